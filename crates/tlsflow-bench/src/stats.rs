//! Median, minimum and maximum of a contender's runs.

use crate::results::{Row, Sample};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Summary {
    /// `None` when there are no values.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    /// The figure of a row's runs.
    pub(crate) fn value(row: &Row) -> Option<Summary> {
        Summary::of(row.samples.iter().map(|s| s.value))
    }

    /// The CPU seconds per GiB of a row's runs.
    pub(crate) fn cpu(row: &Row) -> Option<Summary> {
        Summary::of(row.samples.iter().filter_map(|s: &Sample| s.cpu_s_per_gib))
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn median_min_max() {
        let s = Summary::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of([4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Summary::of([]).is_none());
    }
}
