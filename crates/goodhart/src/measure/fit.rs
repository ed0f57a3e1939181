//! The functional forms of Gao, Schulman and Hilton (2022) for gold reward
//! against the distance `d = sqrt(KL)` travelled from the base policy:
//!
//! - best-of-n (and the other reweightings of base samples): `g(d) = d (alpha - beta d)`;
//! - RL: `g(d) = d (alpha - beta ln d)`.
//!
//! `g` is the gain over the base policy (gold minus gold at d = 0). Both forms
//! are linear in (alpha, beta), so they are fitted by ordinary least squares
//! with the usual standard errors; the peak (d*, g*) follows in closed form.
//! `predict_half` fits the smaller-KL half of a sweep and scores its
//! predictions on the larger half: does the fit extrapolate?

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// `d (alpha - beta d)`.
    Bon,
    /// `d (alpha - beta ln d)`.
    Rl,
}

impl Form {
    /// The two regressors whose coefficients are (alpha, -beta).
    fn regressors(self, d: f64) -> [f64; 2] {
        match self {
            Form::Bon => [d, d * d],
            Form::Rl => [d, if d > 0.0 { d * d.ln() } else { 0.0 }],
        }
    }

    pub fn eval(self, alpha: f64, beta: f64, d: f64) -> f64 {
        let [x1, x2] = self.regressors(d);
        alpha * x1 - beta * x2
    }

    pub fn formula(self) -> &'static str {
        match self {
            Form::Bon => "d (alpha - beta d)",
            Form::Rl => "d (alpha - beta ln d)",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub form: Form,
    pub alpha: f64,
    pub beta: f64,
    /// Standard errors of alpha and beta.
    pub alpha_se: f64,
    pub beta_se: f64,
    pub r2: f64,
    /// Points fitted.
    pub n: usize,
    /// The predicted peak of the gain, when the curve turns over (beta > 0, and
    /// alpha > 0: a curve that falls from d = 0 on has no peak at d > 0).
    pub peak_d: Option<f64>,
    pub peak_gain: Option<f64>,
    /// The predicted peak lies beyond the largest d fitted: an extrapolation, not a finding.
    #[serde(default)]
    pub peak_extrapolated: bool,
}

impl Fit {
    pub fn gain(&self, d: f64) -> f64 {
        self.form.eval(self.alpha, self.beta, d)
    }
}

/// Least-squares fit of `gains[i] ≈ g(ds[i])`; None with fewer than 3 points or a singular design.
pub fn fit(form: Form, ds: &[f64], gains: &[f64]) -> Option<Fit> {
    let n = ds.len();
    if n < 3 || gains.len() != n || ds.iter().chain(gains).any(|x| !x.is_finite()) {
        return None;
    }
    // A curve that does not move has no shape to fit (rounding would give it one).
    if gains.iter().all(|g| g.abs() < 1e-12) {
        return None;
    }
    // Normal equations of the 2-column design, no intercept (g(0) = 0 by construction).
    let (mut s11, mut s12, mut s22, mut t1, mut t2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&d, &g) in ds.iter().zip(gains) {
        let [x1, x2] = form.regressors(d);
        s11 += x1 * x1;
        s12 += x1 * x2;
        s22 += x2 * x2;
        t1 += x1 * g;
        t2 += x2 * g;
    }
    let det = s11 * s22 - s12 * s12;
    if det.abs() <= 1e-12 * (s11 * s22).max(1e-300) {
        return None;
    }
    let c1 = (s22 * t1 - s12 * t2) / det;
    let c2 = (s11 * t2 - s12 * t1) / det;
    let (alpha, beta) = (c1, -c2);
    let rss: f64 = ds
        .iter()
        .zip(gains)
        .map(|(&d, &g)| (g - form.eval(alpha, beta, d)).powi(2))
        .sum();
    let mean = gains.iter().sum::<f64>() / n as f64;
    let tss: f64 = gains.iter().map(|g| (g - mean).powi(2)).sum();
    let sigma2 = rss / (n - 2) as f64;
    let (alpha_se, beta_se) = ((sigma2 * s22 / det).sqrt(), (sigma2 * s11 / det).sqrt());
    let (peak_d, peak_gain) = match form {
        _ if beta <= 1e-9 * alpha.abs().max(1e-9) => (None, None),
        // alpha <= 0 with beta > 0: the gain falls from d = 0 on (both forms), so
        // there is no peak at d > 0 (the RL form's stationary point near 0 is a
        // minimum's neighbour, not a turn of the data).
        _ if alpha <= 0.0 => (None, None),
        Form::Bon => (
            Some(alpha / (2.0 * beta)),
            Some(alpha * alpha / (4.0 * beta)),
        ),
        // g'(d) = alpha - beta ln d - beta = 0  =>  d* = exp(alpha / beta - 1), g(d*) = beta d*.
        Form::Rl => {
            let d = (alpha / beta - 1.0).exp();
            (Some(d), Some(beta * d))
        }
    };
    let peak_d = peak_d.filter(|d| d.is_finite());
    let largest = ds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Fit {
        form,
        alpha,
        beta,
        alpha_se,
        beta_se,
        r2: if tss > 0.0 { 1.0 - rss / tss } else { f64::NAN },
        n,
        peak_extrapolated: peak_d.is_some_and(|d| d > largest),
        peak_d,
        peak_gain: peak_gain.filter(|g| g.is_finite()),
    })
}

/// How well a fit on the smaller-KL half of a sweep predicts the larger half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HalfPrediction {
    pub fit: Fit,
    /// Points held out (the larger-d half).
    pub n_predicted: usize,
    /// Root mean squared error of the predicted gains on the held-out half.
    pub rmse: f64,
    /// 1 - SSE / SS of the held-out gains about their mean (negative: worse than a constant).
    pub r2: f64,
}

/// Fit the points with the smaller half of `ds` and predict the rest. Needs 3 points to fit and 1 to predict.
pub fn predict_half(form: Form, ds: &[f64], gains: &[f64]) -> Option<HalfPrediction> {
    let mut order: Vec<usize> = (0..ds.len()).collect();
    order.sort_by(|&a, &b| ds[a].total_cmp(&ds[b]));
    let half = ds.len().div_ceil(2);
    let (lo, hi) = order.split_at(half);
    if hi.is_empty() {
        return None;
    }
    let pick = |idx: &[usize], v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let fit = fit(form, &pick(lo, ds), &pick(lo, gains))?;
    let truth = pick(hi, gains);
    let errs: Vec<f64> = hi.iter().map(|&i| gains[i] - fit.gain(ds[i])).collect();
    let sse: f64 = errs.iter().map(|e| e * e).sum();
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let ss: f64 = truth.iter().map(|g| (g - mean).powi(2)).sum();
    Some(HalfPrediction {
        fit,
        n_predicted: hi.len(),
        rmse: (sse / hi.len() as f64).sqrt(),
        r2: if ss > 0.0 { 1.0 - sse / ss } else { f64::NAN },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_parameters_and_peak_of_noiseless_curves() {
        let ds: Vec<f64> = (1..=12).map(|i| i as f64 * 0.4).collect();
        for (form, alpha, beta) in [(Form::Bon, 0.8, 0.2), (Form::Rl, 0.5, 0.3)] {
            let gains: Vec<f64> = ds.iter().map(|&d| form.eval(alpha, beta, d)).collect();
            let f = fit(form, &ds, &gains).unwrap();
            assert!(
                (f.alpha - alpha).abs() < 1e-9 && (f.beta - beta).abs() < 1e-9,
                "{f:?}"
            );
            assert!((f.r2 - 1.0).abs() < 1e-9);
            let (d, g) = (f.peak_d.unwrap(), f.peak_gain.unwrap());
            // The peak is a maximum of the curve.
            assert!((f.gain(d) - g).abs() < 1e-9);
            assert!(
                f.gain(d * 1.01) < g && f.gain(d * 0.99) < g,
                "{form:?}: peak at {d}"
            );
            let half = predict_half(form, &ds, &gains).unwrap();
            assert!(half.rmse < 1e-9 && half.n_predicted == 6);
        }
    }

    #[test]
    fn noisy_points_give_honest_standard_errors() {
        let ds: Vec<f64> = (1..=40).map(|i| i as f64 * 0.1).collect();
        let noise = |i: usize| ((i * 7919 % 101) as f64 / 101.0 - 0.5) * 0.1;
        let gains: Vec<f64> = ds
            .iter()
            .enumerate()
            .map(|(i, &d)| Form::Bon.eval(1.0, 0.25, d) + noise(i))
            .collect();
        let f = fit(Form::Bon, &ds, &gains).unwrap();
        assert!(
            (f.alpha - 1.0).abs() < 4.0 * f.alpha_se + 1e-3
                && f.alpha_se > 0.0
                && f.alpha_se < 0.05,
            "{f:?}"
        );
        assert!((f.beta - 0.25).abs() < 4.0 * f.beta_se + 1e-3, "{f:?}");
        assert!(f.r2 > 0.9);
    }

    #[test]
    fn a_curve_that_never_turns_has_no_peak_and_too_few_points_no_fit() {
        let ds = [1.0, 2.0, 3.0, 4.0];
        let gains = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(fit(Form::Bon, &ds, &gains).unwrap().peak_d, None);
        assert!(fit(Form::Rl, &ds[..2], &gains[..2]).is_none());
        // Falling from the start (alpha < 0, beta > 0): d (alpha - beta d) peaks at a negative d, which is no peak.
        let falling: Vec<f64> = ds.iter().map(|&d| Form::Bon.eval(-0.3, 0.1, d)).collect();
        let f = fit(Form::Bon, &ds, &falling).unwrap();
        assert!(f.alpha < 0.0 && f.beta > 0.0);
        assert_eq!((f.peak_d, f.peak_gain), (None, None));
        assert!(fit(Form::Bon, &[1.0, 2.0, f64::NAN], &[0.0, 0.0, 0.0]).is_none());
        assert!(
            fit(Form::Bon, &ds, &[0.0, 1e-16, -1e-16, 0.0]).is_none(),
            "a flat curve"
        );
        // The RL form on a curve that only falls: alpha <= 0, no peak (its
        // stationary point exp(alpha / beta - 1) would sit near d = 0).
        let falling: Vec<f64> = ds.iter().map(|&d| Form::Rl.eval(-0.3, 0.1, d)).collect();
        let f = fit(Form::Rl, &ds, &falling).unwrap();
        assert!(f.alpha < 0.0 && f.beta > 0.0, "{f:?}");
        assert_eq!((f.peak_d, f.peak_gain), (None, None));
    }

    #[test]
    fn a_peak_beyond_the_data_is_flagged_as_an_extrapolation() {
        // d (1 - 0.1 d) peaks at d = 5; measured up to d = 2 it is extrapolated, up to 8 it is not.
        let gains = |ds: &[f64]| {
            ds.iter()
                .map(|&d| Form::Bon.eval(1.0, 0.1, d))
                .collect::<Vec<_>>()
        };
        let near = [0.5, 1.0, 1.5, 2.0];
        let f = fit(Form::Bon, &near, &gains(&near)).unwrap();
        assert!((f.peak_d.unwrap() - 5.0).abs() < 1e-9 && f.peak_extrapolated);
        let far = [1.0, 3.0, 6.0, 8.0];
        assert!(
            !fit(Form::Bon, &far, &gains(&far))
                .unwrap()
                .peak_extrapolated
        );
    }
}
