//! Local time for event and history lines: the UTC offset from the system's time-zone file.
//!
//! Reads `$TZ` (a zone name or `:path`) or `/etc/localtime` in the TZif format (RFC 8536) and
//! takes the offset of the last transition at or before the time asked about. Times after the
//! file's last transition keep that transition's offset (the POSIX rule in the footer is not
//! interpreted); without a readable file, times are shown in UTC. No crate in the tree reads
//! time zones without C bindings (`time`'s `local-offset` needs libc and refuses to run once the
//! async runtime's threads exist), and this is all the command line needs.

use super::text::civil;

/// A time zone's transitions: `(unix seconds, UTC offset in seconds)`, in order.
#[derive(Debug, Default)]
pub(super) struct Zone {
    transitions: Vec<(i64, i64)>,
    /// The offset before the first transition (or always, without transitions).
    initial: i64,
}

impl Zone {
    /// The local zone, or UTC when it cannot be read.
    pub(super) fn local() -> Self {
        let path = match std::env::var("TZ") {
            Ok(tz) if tz.is_empty() || tz == "UTC" => return Self::default(),
            Ok(tz) => match tz.strip_prefix(':').unwrap_or(&tz) {
                p if p.starts_with('/') => p.to_owned(),
                name => format!("/usr/share/zoneinfo/{name}"),
            },
            Err(_) => "/etc/localtime".to_owned(),
        };
        std::fs::read(path).ok().and_then(|bytes| parse(&bytes)).unwrap_or_default()
    }

    fn offset_at(&self, unix_s: i64) -> i64 {
        let i = self.transitions.partition_point(|&(at, _)| at <= unix_s);
        if i == 0 { self.initial } else { self.transitions[i - 1].1 }
    }

    /// `YYYY-MM-DD HH:MM:SS.mmm` in local time.
    pub(super) fn datetime(&self, unix_ms: u64) -> String {
        let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
        let local = ms.div_euclid(1000) + self.offset_at(ms.div_euclid(1000));
        let (y, mo, d, h, mi, s) = civil(local);
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}", ms.rem_euclid(1000))
    }

    /// `HH:MM:SS.mmm` in local time.
    pub(super) fn time(&self, unix_ms: u64) -> String {
        self.datetime(unix_ms).split_off(11)
    }
}

/// Parses a TZif file: the version 2+ (64-bit) data block when present, else version 1's.
fn parse(bytes: &[u8]) -> Option<Zone> {
    let header = |at: usize| -> Option<(u8, [usize; 6])> {
        let h = bytes.get(at..at + 44)?;
        if &h[..4] != b"TZif" {
            return None;
        }
        let mut counts = [0; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            let b = &h[20 + 4 * i..24 + 4 * i];
            *c = usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()?;
        }
        Some((h[4], counts))
    };
    let (version, counts) = header(0)?;
    let v1_len = |[isut, isstd, leap, time, types, chars]: [usize; 6], time_size: usize| {
        time * time_size + time + types * 6 + chars + leap * (time_size + 4) + isstd + isut
    };
    let (start, counts, size) = if version >= b'2' {
        let second = 44 + v1_len(counts, 4);
        (second + 44, header(second)?.1, 8)
    } else {
        (44, counts, 4)
    };
    let [_, _, _, time_count, type_count, _] = counts;
    let times = bytes.get(start..start + time_count * size)?;
    let indices = bytes.get(start + time_count * size..start + time_count * (size + 1))?;
    let types = bytes.get(start + time_count * (size + 1)..)?.get(..type_count * 6)?;
    let offset = |t: usize| -> Option<i64> {
        let b = types.get(t * 6..t * 6 + 4)?;
        Some(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    let mut transitions = Vec::with_capacity(time_count);
    for (chunk, &index) in times.chunks_exact(size).zip(indices) {
        let at = if size == 8 {
            i64::from_be_bytes(chunk.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(chunk.try_into().ok()?))
        };
        transitions.push((at, offset(usize::from(index))?));
    }
    Some(Zone { transitions, initial: offset(0)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_without_a_zone() {
        assert_eq!(Zone::default().datetime(1_796_517_045_123), "2026-12-06 00:30:45.123");
        assert_eq!(Zone::default().time(1_796_517_045_123), "00:30:45.123");
    }

    #[test]
    fn offsets_follow_the_transitions() {
        let zone = Zone { transitions: vec![(100, 3600), (200, 7200)], initial: 0 };
        assert_eq!(zone.offset_at(99), 0);
        assert_eq!(zone.offset_at(100), 3600);
        assert_eq!(zone.offset_at(1_000), 7200);
    }

    #[test]
    fn reads_a_real_zone_file() {
        let bytes = std::fs::read("/usr/share/zoneinfo/Europe/Paris")
            .expect("tzdata is installed (scripts/setup)");
        let zone = parse(&bytes).expect("a TZif file");
        // Winter (CET, +1h) and summer (CEST, +2h) of 2024.
        assert_eq!(zone.offset_at(1_704_067_200), 3600);
        assert_eq!(zone.offset_at(1_719_792_000), 7200);
    }
}
