//! Serde forms for the model's fields whose types have none of their own, so a validated
//! [`super::Check`] travels to probes as JSON and comes back exactly: durations as the strings
//! people write (`"10s"`), regexes and header names as their text, compiled again on arrival.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Duration` as `"1m 30s"`.
pub(super) mod duration {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        d: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::duration::format(*d))
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::duration::parse(&text)
            .map_err(|e| D::Error::custom(format!("duration `{text}` {e}")))
    }
}

/// `Option<Duration>` as `"500ms"` or `null`.
pub(super) mod opt_duration {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        d.map(crate::duration::format).serialize(s)
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                crate::duration::parse(&text)
                    .map_err(|e| D::Error::custom(format!("duration `{text}` {e}")))
            })
            .transpose()
    }
}

fn compile<E: serde::de::Error>(text: &str) -> Result<::regex::Regex, E> {
    ::regex::Regex::new(text).map_err(|e| E::custom(format!("pattern `{text}`: {e}")))
}

fn header_name<E: serde::de::Error>(text: &str) -> Result<http::HeaderName, E> {
    http::HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| E::custom(format!("`{text}` is not a header name")))
}

/// `Regex` as its pattern.
pub(super) mod regex {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        r: &::regex::Regex,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.as_str())
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<::regex::Regex, D::Error> {
        compile(&String::deserialize(d)?)
    }
}

/// `Option<Regex>` as its pattern or `null`.
pub(super) mod opt_regex {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        r: &Option<::regex::Regex>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        r.as_ref().map(::regex::Regex::as_str).serialize(s)
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<::regex::Regex>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| compile(&t))
            .transpose()
    }
}

/// `HeaderName` as its (lowercase) text.
pub(super) mod name {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        n: &http::HeaderName,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(n.as_str())
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<http::HeaderName, D::Error> {
        header_name(&String::deserialize(d)?)
    }
}

/// Request headers as `[["name", "value"], …]`.
pub(super) mod headers {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        h: &[(http::HeaderName, http::HeaderValue)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let pairs = h
            .iter()
            .map(|(n, v)| {
                v.to_str()
                    .map(|v| (n.as_str(), v))
                    .map_err(|_| serde::ser::Error::custom(format!("header `{n}` is not text")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        pairs.serialize(s)
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, D::Error> {
        Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(n, v)| {
                let value = http::HeaderValue::from_str(&v)
                    .map_err(|_| D::Error::custom(format!("header `{n}`: `{v}` is not a value")))?;
                Ok((header_name(&n)?, value))
            })
            .collect()
    }
}

/// Response header patterns as `[["name", "pattern"], …]`.
pub(super) mod header_patterns {
    use super::*;

    pub(in crate::model) fn serialize<S: Serializer>(
        h: &[(http::HeaderName, ::regex::Regex)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        h.iter()
            .map(|(n, r)| (n.as_str(), r.as_str()))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(in crate::model) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(http::HeaderName, ::regex::Regex)>, D::Error> {
        Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(n, p)| Ok((header_name(&n)?, compile(&p)?)))
            .collect()
    }
}
