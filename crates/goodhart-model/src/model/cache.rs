//! Key/value cache for incremental decoding: one preallocated buffer per layer,
//! written in place, so a decoding step copies only the new keys.

use candle_core::{DType, Device, Result, Tensor};

#[derive(Clone, Debug)]
pub struct LayerCache {
    k: Tensor, // [b, h, capacity, dh]
    v: Tensor, // [b, h, capacity, dh]
    len: usize,
}

impl LayerCache {
    /// Store `k, v: [b, h, t, dh]` after the cached keys and return all keys so far `[b, h, len + t, dh]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        self.k.slice_set(k, 2, self.len)?;
        self.v.slice_set(v, 2, self.len)?;
        let n = self.len + t;
        Ok((self.k.narrow(2, 0, n)?, self.v.narrow(2, 0, n)?))
    }
}

#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// `shape = (batch, heads, capacity, head_dim)` for each of `n_layer` layers.
    pub fn new(
        n_layer: usize,
        shape: (usize, usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let layers = (0..n_layer)
            .map(|_| {
                Ok(LayerCache {
                    k: Tensor::zeros(shape, dtype, device)?,
                    v: Tensor::zeros(shape, dtype, device)?,
                    len: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: 0,
            capacity: shape.2,
        })
    }

    /// `(batch, heads, capacity, head_dim)` of each layer's key buffer.
    pub fn key_shape(&self) -> (usize, usize, usize, usize) {
        self.layers
            .first()
            .and_then(|l| l.k.dims4().ok())
            .unwrap_or((0, 0, self.capacity, 0))
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn layer(&mut self, i: usize) -> &mut LayerCache {
        let len = self.len;
        let layer = &mut self.layers[i];
        layer.len = len;
        layer
    }

    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// A cache whose row `j` is row `rows[j]` of this one: how one prompt's keys,
    /// computed once, serve every sample drawn from it.
    pub fn select_rows(&self, rows: &[u32]) -> Result<Self> {
        let device = self.layers.first().map(|l| l.k.device().clone());
        let Some(device) = device else {
            return Ok(self.clone());
        };
        let idx = Tensor::from_slice(rows, rows.len(), &device)?;
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerCache {
                    k: l.k.index_select(&idx, 0)?,
                    v: l.v.index_select(&idx, 0)?,
                    len: l.len,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: self.len,
            capacity: self.capacity,
        })
    }
}
