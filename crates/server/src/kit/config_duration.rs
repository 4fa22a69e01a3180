//! Durations in the config, written the human way: `"30s"`, `"240h"`, `"30d"`
//! (`#[serde(with = "crate::kit::config_duration")]`, or `…::option` for an optional one).

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration as `humantime` reads it; the error quotes the text.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
}

/// An optional duration: present means `Some`.
pub mod option {
    use serde::Deserializer;
    use std::time::Duration;

    /// See [`super::deserialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}
