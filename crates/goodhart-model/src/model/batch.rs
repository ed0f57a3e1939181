//! Prompt + completion token sequences, right-padded into tensors for
//! teacher-forced passes (training, scoring, reward models).

use candle_core::{Device, Result, Tensor};

use super::transformer::arange_positions;

#[derive(Clone, Debug)]
pub struct SequenceBatch {
    /// `[b, t]` tokens: prompt then completion, padded on the right.
    pub input: Tensor,
    /// `[b, t]` the token each position predicts (`input` shifted left; pad past the end).
    pub target: Tensor,
    /// `[b, t]` f32, 1 where `target` is a completion token (the loss positions).
    pub completion_mask: Tensor,
    /// `[b]` index of each sequence's last token (where a sequence-level head reads).
    pub last: Tensor,
    /// `[b, t]` positions 0..t.
    pub positions: Tensor,
    pub prompt_lens: Vec<usize>,
    pub completion_lens: Vec<usize>,
}

impl SequenceBatch {
    /// `pairs[i] = (prompt tokens, completion tokens)`; each prompt must be non-empty (it starts with BOS).
    pub fn new(pairs: &[(&[u32], &[u32])], pad: u32, device: &Device) -> Result<Self> {
        let b = pairs.len();
        let t = pairs
            .iter()
            .map(|(p, c)| p.len() + c.len())
            .max()
            .unwrap_or(1);
        let mut input = vec![pad; b * t];
        let mut target = vec![pad; b * t];
        let mut mask = vec![0f32; b * t];
        let mut last = Vec::with_capacity(b);
        for (i, (p, c)) in pairs.iter().enumerate() {
            if p.is_empty() {
                candle_core::bail!("sequence {i} has an empty prompt (it must start with BOS)");
            }
            let row = &mut input[i * t..(i + 1) * t];
            row[..p.len()].copy_from_slice(p);
            row[p.len()..p.len() + c.len()].copy_from_slice(c);
            let len = p.len() + c.len();
            for pos in 0..len - 1 {
                target[i * t + pos] = input[i * t + pos + 1];
            }
            // Position pos predicts token pos + 1; completion tokens sit at p.len()..len.
            for pos in p.len() - 1..len - 1 {
                mask[i * t + pos] = 1.0;
            }
            last.push((len - 1) as u32);
        }
        Ok(Self {
            input: Tensor::from_vec(input, (b, t), device)?,
            target: Tensor::from_vec(target, (b, t), device)?,
            completion_mask: Tensor::from_vec(mask, (b, t), device)?,
            last: Tensor::from_vec(last, b, device)?,
            positions: arange_positions(b, t, device)?,
            prompt_lens: pairs.iter().map(|(p, _)| p.len()).collect(),
            completion_lens: pairs.iter().map(|(_, c)| c.len()).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.prompt_lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompt_lens.is_empty()
    }

    /// Number of completion tokens in the batch.
    pub fn n_completion_tokens(&self) -> usize {
        self.completion_lens.iter().sum()
    }

    /// Split a `[b, t]` per-position tensor into each row's completion part.
    pub fn completion_values(&self, per_position: &Tensor) -> Result<Vec<Vec<f32>>> {
        let rows = per_position.to_vec2::<f32>()?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let start = self.prompt_lens[i] - 1;
                row[start..start + self.completion_lens[i]].to_vec()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_mask_line_up_with_completions() {
        let dev = Device::Cpu;
        let b = SequenceBatch::new(&[(&[1, 5, 6], &[7, 2]), (&[1, 5], &[2])], 0, &dev).unwrap();
        assert_eq!(
            b.input.to_vec2::<u32>().unwrap(),
            vec![vec![1, 5, 6, 7, 2], vec![1, 5, 2, 0, 0]]
        );
        assert_eq!(
            b.target.to_vec2::<u32>().unwrap(),
            vec![vec![5, 6, 7, 2, 0], vec![5, 2, 0, 0, 0]]
        );
        assert_eq!(
            b.completion_mask.to_vec2::<f32>().unwrap(),
            vec![vec![0., 0., 1., 1., 0.], vec![0., 1., 0., 0., 0.]]
        );
        assert_eq!(b.last.to_vec1::<u32>().unwrap(), vec![4, 2]);
        let per_pos = b.target.to_dtype(candle_core::DType::F32).unwrap();
        assert_eq!(
            b.completion_values(&per_pos).unwrap(),
            vec![vec![7., 2.], vec![2.]]
        );
    }
}
