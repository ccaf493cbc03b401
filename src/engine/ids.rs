//! Identifiers the engine hands out or keeps.

use std::fmt;
use std::str::FromStr;

use rand::RngExt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A node's permanent identity: 40 lower-case hex characters, like a Sentinel's `myid`.
///
/// Generated once from the engine's seeded RNG at first start and kept in the state file. Clients
/// see it in `SENTINEL MYID` and `SENTINEL SENTINELS`; peers use it to tell a restarted node (same
/// id) from a replaced one (new id).
#[derive(Clone, Copy, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct NodeId([u8; 20]);

impl NodeId {
    /// Length of the hex form.
    pub const HEX_LEN: usize = 40;

    /// Draws a fresh id from `rng`.
    pub fn random(rng: &mut impl rand::Rng) -> Self {
        let mut bytes = [0u8; 20];
        rng.fill(&mut bytes);
        Self(bytes)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Builds an id from raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The first 8 hex characters, used in connection names (`picket-1a2b3c4d`).
    #[must_use]
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a string is not a node id.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("expected 40 hex characters, found {0:?}")]
pub struct NodeIdError(pub String);

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NodeIdError(s.to_owned());
        if s.len() != Self::HEX_LEN || !s.is_ascii() {
            return Err(err());
        }
        let mut bytes = [0u8; 20];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(Self(bytes))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 20]>::deserialize(deserializer).map(Self)
        }
    }
}

/// One connection to a monitored Redis instance. The engine allocates a new id for every
/// connection attempt, so a late event about an old connection can never be mistaken for news
/// about the current one.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct LinkId(pub u64);

/// One request sent on a link; the reply carries it back.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct RequestId(pub u64);

/// A peer's slot: its index in the configured `peers` list. Membership is the configuration, so
/// the slot (not an address or an id) is what counts as a voter.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct PeerId(pub u16);

/// Correlates an operator command (from the RESP port or HTTP) with its answer.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Ticket(pub u64);

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn node_id_round_trips_through_hex() {
        let id = NodeId::random(&mut ChaCha8Rng::seed_from_u64(7));
        let text = id.to_string();
        assert_eq!(text.len(), 40);
        assert_eq!(text.parse::<NodeId>(), Ok(id));
        assert_eq!(id.short(), text[..8]);
        assert!("xyz".parse::<NodeId>().is_err());
        assert!("g".repeat(40).parse::<NodeId>().is_err());
    }
}
