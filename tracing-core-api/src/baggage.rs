//! Baggage: key/value pairs that travel with a trace across process
//! boundaries, bounded by explicit [`BaggageLimits`].

use std::sync::Arc;

/// Limits on baggage, applied on every insertion and on every extraction
/// from a carrier, so that a hostile caller can never make a service hold or
/// forward unbounded baggage.
///
/// The defaults follow the W3C baggage specification's minimums: 64 items and
/// 8192 bytes in all. Items that would break a limit are dropped (the rest of
/// the context is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BaggageLimits {
    /// Maximum number of items. Default 64.
    pub max_items: usize,
    /// Maximum length of a key in bytes. Default 256.
    pub max_key_len: usize,
    /// Maximum length of a value in bytes. Default 4096.
    pub max_value_len: usize,
    /// Maximum sum of key and value lengths over all items. Default 8192.
    pub max_total_len: usize,
}

impl BaggageLimits {
    /// The default limits.
    pub const DEFAULT: BaggageLimits = BaggageLimits {
        max_items: 64,
        max_key_len: 256,
        max_value_len: 4096,
        max_total_len: 8192,
    };

    /// Limits with the given maximum number of items.
    #[inline]
    pub const fn with_max_items(mut self, n: usize) -> Self {
        self.max_items = n;
        self
    }

    /// Limits with the given maximum value length.
    #[inline]
    pub const fn with_max_value_len(mut self, n: usize) -> Self {
        self.max_value_len = n;
        self
    }

    /// Limits with the given maximum key length.
    #[inline]
    pub const fn with_max_key_len(mut self, n: usize) -> Self {
        self.max_key_len = n;
        self
    }

    /// Limits with the given maximum total length.
    #[inline]
    pub const fn with_max_total_len(mut self, n: usize) -> Self {
        self.max_total_len = n;
        self
    }
}

impl Default for BaggageLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a baggage item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaggageError {
    /// The key is empty.
    #[error("baggage key is empty")]
    EmptyKey,
    /// The key is longer than [`BaggageLimits::max_key_len`].
    #[error("baggage key is {len} bytes, over the limit of {limit}")]
    KeyTooLong {
        /// Length of the key.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The value is longer than [`BaggageLimits::max_value_len`].
    #[error("baggage value is {len} bytes, over the limit of {limit}")]
    ValueTooLong {
        /// Length of the value.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The baggage already has [`BaggageLimits::max_items`] items.
    #[error("baggage already holds the maximum of {limit} items")]
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// The tracer's allowlist does not include this key.
    #[error("baggage key not allowed by the tracer's allowlist")]
    KeyNotAllowed,
    /// The item would push the baggage over [`BaggageLimits::max_total_len`].
    #[error("baggage would grow to {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size it would reach.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// An immutable, cheaply cloned set of baggage items (copy on write).
///
/// Empty baggage holds no heap memory; cloning is a reference-count
/// increment. Setting an existing key replaces its value.
///
/// ```
/// use opentracing_api::Baggage;
/// let mut b = Baggage::default();
/// b.insert("customer", "Rachel's Floral Designs").unwrap();
/// assert_eq!(b.get("customer"), Some("Rachel's Floral Designs"));
/// assert_eq!(b.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Baggage {
    items: Option<Arc<Vec<(String, String)>>>,
}

impl Baggage {
    /// Empty baggage.
    #[inline]
    pub const fn new() -> Self {
        Baggage { items: None }
    }

    /// Whether there are no items.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.as_ref().is_none_or(|v| v.is_empty())
    }

    /// Number of items.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.as_ref().map_or(0, |v| v.len())
    }

    /// The value for `key`, if any.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Iterates over `(key, value)` pairs in insertion order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.items
            .iter()
            .flat_map(|v| v.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sum of key and value lengths.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Inserts or replaces an item within [`BaggageLimits::DEFAULT`].
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), BaggageError> {
        self.insert_with_limits(key.into(), value.into(), &BaggageLimits::DEFAULT)
    }

    /// Inserts or replaces an item within the given limits. On error the
    /// baggage is unchanged.
    pub fn insert_with_limits(
        &mut self,
        key: String,
        value: String,
        limits: &BaggageLimits,
    ) -> Result<(), BaggageError> {
        if key.is_empty() {
            return Err(BaggageError::EmptyKey);
        }
        if key.len() > limits.max_key_len {
            return Err(BaggageError::KeyTooLong {
                len: key.len(),
                limit: limits.max_key_len,
            });
        }
        if value.len() > limits.max_value_len {
            return Err(BaggageError::ValueTooLong {
                len: value.len(),
                limit: limits.max_value_len,
            });
        }
        let existing = self.iter().position(|(k, _)| k == key);
        let old_len = existing
            .and_then(|i| self.items.as_ref().map(|v| v[i].0.len() + v[i].1.len()))
            .unwrap_or(0);
        let new_total = self.total_len() - old_len + key.len() + value.len();
        if new_total > limits.max_total_len {
            return Err(BaggageError::TooLarge {
                len: new_total,
                limit: limits.max_total_len,
            });
        }
        if existing.is_none() && self.len() >= limits.max_items {
            return Err(BaggageError::TooManyItems {
                limit: limits.max_items,
            });
        }
        let items = Arc::make_mut(self.items.get_or_insert_with(Default::default));
        match existing {
            Some(i) => items[i].1 = value,
            None => items.push((key, value)),
        }
        Ok(())
    }

    /// Removes an item, returning its value.
    #[inline]
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.iter().position(|(k, _)| k == key)?;
        let items = Arc::make_mut(self.items.as_mut()?);
        Some(items.remove(i).1)
    }

    /// Adds the items of `other` whose keys are not present yet, within the
    /// default limits; items that do not fit are skipped.
    pub fn merge_missing(&mut self, other: &Baggage) {
        for (k, v) in other.iter() {
            if self.get(k).is_none() {
                let _ =
                    self.insert_with_limits(k.to_owned(), v.to_owned(), &BaggageLimits::DEFAULT);
            }
        }
    }
}

/// Baggage is a set: equal when it holds the same items, in any order.
impl PartialEq for Baggage {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Baggage {}

impl std::fmt::Debug for Baggage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Baggage {
    /// Collects items within the default limits; items over a limit are
    /// skipped.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut b = Baggage::new();
        for (k, v) in iter {
            let _ = b.insert(k, v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_leave_baggage_unchanged() {
        let limits = BaggageLimits::DEFAULT
            .with_max_items(2)
            .with_max_value_len(5)
            .with_max_total_len(12);
        let mut b = Baggage::new();
        b.insert_with_limits("a".into(), "1".into(), &limits)
            .unwrap();
        b.insert_with_limits("b".into(), "2".into(), &limits)
            .unwrap();
        assert_eq!(
            b.insert_with_limits("c".into(), "3".into(), &limits),
            Err(BaggageError::TooManyItems { limit: 2 })
        );
        // Replacing an existing key is allowed at the item limit.
        b.insert_with_limits("a".into(), "11".into(), &limits)
            .unwrap();
        assert_eq!(
            b.insert_with_limits("a".into(), "123456".into(), &limits),
            Err(BaggageError::ValueTooLong { len: 6, limit: 5 })
        );
        assert_eq!(
            b.insert_with_limits(
                "b".into(),
                "123456789".into(),
                &BaggageLimits {
                    max_value_len: 100,
                    ..limits
                }
            ),
            Err(BaggageError::TooLarge { len: 13, limit: 12 })
        );
        assert_eq!(b.get("a"), Some("11"));
        assert_eq!(b.len(), 2);
        assert_eq!(b.insert("", "x"), Err(BaggageError::EmptyKey));
    }

    #[test]
    fn clone_is_copy_on_write() {
        let mut a = Baggage::new();
        a.insert("k", "v").unwrap();
        let mut b = a.clone();
        b.insert("k", "w").unwrap();
        assert_eq!(a.get("k"), Some("v"));
        assert_eq!(b.get("k"), Some("w"));
        assert_eq!(b.remove("k").as_deref(), Some("w"));
        assert!(b.is_empty());
    }
}

thread_local! {
    /// Baggage items extractions on this thread dropped (over a limit, or
    /// not decodable), since a tracer last took the count.
    static DROPPED_ON_EXTRACTION: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts `n` baggage items an extraction dropped.
pub(crate) fn count_dropped(n: usize) {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    let _ = DROPPED_ON_EXTRACTION.try_with(|d| d.set(d.get().saturating_add(n)));
}

/// How many baggage items the propagators dropped while extracting on this
/// thread (over the [`BaggageLimits`], or not decodable) since the last
/// call, which resets the count: a tracer takes it before and after its
/// extraction to count what callers sent and did not get through.
#[doc(hidden)]
pub fn take_dropped_baggage() -> u32 {
    DROPPED_ON_EXTRACTION
        .try_with(|d| d.replace(0))
        .unwrap_or(0)
}
