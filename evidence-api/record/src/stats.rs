//! Order statistics of repeated measurements, shared by the harness (which reports them) and the store's
//! benchmark lane (which judges them), so both read the same numbers the same way.
//!
//! Empty input has no median and no spread: both return `None`. A NaN sorts after every number
//! (`f64::total_cmp`), so it never hides as a median of finite values.

/// The median: the middle value, or the mean of the two middle values of an even count. `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The relative spread `(max - min) / median`. `None` when empty or when the median is not positive.
pub fn spread(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    if m.is_nan() || m <= 0.0 {
        return None;
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    Some((hi - lo) / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.5]), Some(7.5));
    }

    #[test]
    fn empty_input_has_no_median_or_spread() {
        assert_eq!(median(&[]), None);
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn spread_is_range_over_median() {
        assert_eq!(spread(&[9.0, 10.0, 11.0]), Some(0.2));
        assert_eq!(spread(&[5.0, 5.0]), Some(0.0));
        assert_eq!(spread(&[0.0, 0.0]), None);
    }
}
