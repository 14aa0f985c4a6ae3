//! Seeded random faults for whole runs: a [`FaultMix`] gives every CDN file body a chance of a
//! cut, a stall or a trickle, the way a flaky network path does, reproducibly.
//!
//! The queued faults of [`crate::faults`] script one request at a time, which is what a test of
//! one behaviour needs. A benchmark of a whole pull under bad conditions needs the opposite:
//! faults spread over hundreds of requests, the same ones on every run of the same seed.
//!
//! Each draw is a hash of the seed, the request (method, path and query, `Range`) and how many
//! times that same request was seen before, so a client that sends the same requests gets the
//! same faults whatever order its concurrent requests arrive in, and a retry of a request draws
//! again. Rules of the form `1/N` apply to every N-th CDN connection instead (counted in accept
//! order): every file body on that connection gets the fault, like a bad route.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::faults::FaultAction;
use crate::link::{parse_duration, parse_rate};

/// A set of random fault rules with a seed, parsed from text like
/// `cut=0.25,stall=0.10:40s,trickle=0.05:1300` or `trickle=1/20:1.3k`.
///
/// Each rule is `KIND=CHANCE[:PARAM]`:
///
/// - `cut`: the body is cut at a byte drawn uniformly from its length (the headers promised
///   the whole length).
/// - `stall[:DURATION]`: the body stops at a random byte for `DURATION` (`40s`, `500ms`;
///   forever without one), then goes on.
/// - `trickle:RATE`: the whole body is sent at about `RATE` bytes per second (`1300`, `1.3k`).
///
/// `CHANCE` is a probability (`0.25` or `25%`): every CDN file body draws once, and the
/// probabilities of the rules are stacked (so they must add up to at most 1), so a body gets
/// at most one of them. Or `1/N`: every N-th CDN connection is bad, and every file body it
/// carries gets this fault (checked before the probabilities).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMix {
    rules: Vec<Rule>,
    seed: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Rule {
    chance: Chance,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Chance {
    Probability(f64),
    EveryNthConnection(u64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Cut,
    Stall(Option<Duration>),
    Trickle(u64),
}

impl FaultMix {
    /// Parses a rule list (see the type's docs); the seed is 0 until [`FaultMix::seed`].
    pub fn parse(text: &str) -> Result<FaultMix, Error> {
        let invalid = |part: &str, why: &str| Error::InvalidConfig {
            message: format!(
                "invalid fault rule {part:?} in {text:?}: {why} (expected KIND=CHANCE[:PARAM], \
                 like cut=0.25, stall=0.1:40s, trickle=0.05:1300 or trickle=1/20:1300)"
            ),
        };
        let mut rules = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, rest) = part
                .split_once('=')
                .ok_or_else(|| invalid(part, "no `=`"))?;
            let (chance, param) = match rest.split_once(':') {
                Some((c, p)) => (c.trim(), Some(p.trim())),
                None => (rest.trim(), None),
            };
            let chance = if let Some((one, n)) = chance.split_once('/') {
                match (one.trim(), n.trim().parse::<u64>()) {
                    ("1", Ok(n)) if n > 0 => Chance::EveryNthConnection(n),
                    _ => return Err(invalid(part, "a 1/N chance needs a positive N")),
                }
            } else {
                let p = match chance.strip_suffix('%') {
                    Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
                    None => chance.parse::<f64>(),
                }
                .map_err(|_| invalid(part, "the chance is not a number"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(invalid(part, "a probability is between 0 and 1"));
                }
                Chance::Probability(p)
            };
            let kind = match (kind.trim(), param) {
                ("cut", None) => Kind::Cut,
                ("cut", Some(_)) => return Err(invalid(part, "cut takes no parameter")),
                ("stall", None) => Kind::Stall(None),
                ("stall", Some(d)) => Kind::Stall(Some(
                    parse_duration(d).map_err(|_| invalid(part, "bad stall duration"))?,
                )),
                ("trickle", Some(r)) => match parse_rate(r) {
                    Ok(rate) if rate > 0 => Kind::Trickle(rate),
                    _ => return Err(invalid(part, "bad trickle rate")),
                },
                ("trickle", None) => return Err(invalid(part, "trickle needs a rate")),
                _ => return Err(invalid(part, "the kind is cut, stall or trickle")),
            };
            rules.push(Rule { chance, kind });
        }
        let total: f64 = rules
            .iter()
            .filter_map(|r| match r.chance {
                Chance::Probability(p) => Some(p),
                Chance::EveryNthConnection(_) => None,
            })
            .sum();
        if total > 1.0 + 1e-9 {
            return Err(Error::InvalidConfig {
                message: format!("the probabilities in {text:?} add up to {total}, more than 1"),
            });
        }
        Ok(FaultMix { rules, seed: 0 })
    }

    /// The same rules with this seed.
    pub fn seed(mut self, seed: u64) -> FaultMix {
        self.seed = seed;
        self
    }

    /// The seed draws are derived from.
    pub fn seed_value(&self) -> u64 {
        self.seed
    }

    /// The fault for a file body of `len` bytes, if any.
    ///
    /// `connection` is the CDN connection's number in accept order (from 0; `None` for one
    /// older than the mix); `key` names the request and `occurrence` is how many times the same key was drawn for before.
    fn draw(
        &self,
        connection: Option<u64>,
        key: &str,
        occurrence: u64,
        len: u64,
    ) -> Option<FaultAction> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(&occurrence.to_le_bytes());
        hasher.update(key.as_bytes());
        let mut bytes = [0u8; 16];
        hasher.finalize_xof().fill(&mut bytes);
        let [a, b] = [&bytes[..8], &bytes[8..]].map(|s| {
            let mut word = [0u8; 8];
            word.copy_from_slice(s);
            u64::from_le_bytes(word)
        });
        // 53 random bits make a uniform f64 in [0, 1).
        let unit = (a >> 11) as f64 / (1u64 << 53) as f64;
        let at = if len == 0 { 0 } else { b % len };

        let bad_connection = self.rules.iter().find(|r| {
            matches!((r.chance, connection), (Chance::EveryNthConnection(n), Some(c)) if (c + 1) % n == 0)
        });
        let kind = bad_connection.map(|r| r.kind).or_else(|| {
            let mut edge = 0.0;
            self.rules.iter().find_map(|r| match r.chance {
                Chance::Probability(p) => {
                    edge += p;
                    (unit < edge).then_some(r.kind)
                }
                Chance::EveryNthConnection(_) => None,
            })
        })?;
        Some(match kind {
            Kind::Cut => FaultAction::CutAfter { bytes: at },
            Kind::Stall(d) => FaultAction::StallAfter {
                bytes: at,
                millis: d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            },
            Kind::Trickle(rate) => FaultAction::Trickle {
                bytes_per_second: rate,
            },
        })
    }
}

impl FromStr for FaultMix {
    type Err = Error;

    fn from_str(s: &str) -> Result<FaultMix, Error> {
        FaultMix::parse(s)
    }
}

impl fmt::Display for FaultMix {
    /// The rules in the syntax [`FaultMix::parse`] reads (without the seed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let kind = match rule.kind {
                Kind::Cut => "cut",
                Kind::Stall(_) => "stall",
                Kind::Trickle(_) => "trickle",
            };
            match rule.chance {
                Chance::Probability(p) => write!(f, "{kind}={p}")?,
                Chance::EveryNthConnection(n) => write!(f, "{kind}=1/{n}")?,
            }
            match rule.kind {
                Kind::Cut | Kind::Stall(None) => {}
                Kind::Stall(Some(d)) => write!(f, ":{}ms", d.as_millis())?,
                Kind::Trickle(rate) => write!(f, ":{rate}")?,
            }
        }
        Ok(())
    }
}

/// The server's current mix, how many times each request was drawn for, and the number of the
/// first CDN connection it applies to.
#[derive(Debug, Default)]
pub(crate) struct MixState {
    inner: Mutex<Option<Active>>,
}

#[derive(Debug)]
struct Active {
    mix: FaultMix,
    seen: HashMap<String, u64>,
    first_connection: u64,
}

impl MixState {
    /// Replaces the mix (or removes it); the occurrence counts restart, and `1/N` rules count
    /// connections from `first_connection` (the next one to be accepted).
    pub(crate) fn set(&self, mix: Option<FaultMix>, first_connection: u64) {
        *self.lock() = mix.map(|mix| Active {
            mix,
            seen: HashMap::new(),
            first_connection,
        });
    }

    pub(crate) fn get(&self) -> Option<FaultMix> {
        self.lock().as_ref().map(|a| a.mix.clone())
    }

    /// Draws the fault for one file body on CDN connection `connection` (in accept order), if
    /// a mix is set. Connections accepted before the mix was set are never "every N-th".
    pub(crate) fn draw(&self, connection: u64, key: String, len: u64) -> Option<FaultAction> {
        let mut guard = self.lock();
        let active = guard.as_mut()?;
        let occurrence = active.seen.entry(key.clone()).or_insert(0);
        let index = connection.checked_sub(active.first_connection);
        let action = active.mix.draw(index, &key, *occurrence, len);
        *occurrence += 1;
        action
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Active>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let mix =
            FaultMix::parse("cut=0.25, stall=10%:40s,trickle=0.05:1.3k,trickle=1/20:1300").unwrap();
        assert_eq!(
            mix.to_string(),
            "cut=0.25,stall=0.1:40000ms,trickle=0.05:1300,trickle=1/20:1300"
        );
        assert_eq!(FaultMix::parse(&mix.to_string()).unwrap(), mix);
        assert_eq!(FaultMix::parse("stall=1").unwrap().to_string(), "stall=1");
        for bad in [
            "cut",
            "cut=x",
            "cut=1.5",
            "cut=0.6,stall=0.6",
            "cut=0.1:5",
            "trickle=0.1",
            "trickle=0.1:0",
            "trickle=1/0:100",
            "trickle=2/5:100",
            "stall=0.1:soon",
            "boom=0.1",
        ] {
            assert!(FaultMix::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn draws_are_deterministic_and_near_their_probabilities() {
        let mix = FaultMix::parse("cut=0.25,stall=0.10:40s,trickle=0.05:1300")
            .unwrap()
            .seed(7);
        let mut counts = HashMap::new();
        for i in 0..4000u64 {
            let key = format!("GET /repos/x?file={i}");
            let a = mix.draw(Some(0), &key, 0, 1000);
            assert_eq!(
                a,
                mix.draw(Some(5), &key, 0, 1000),
                "the same request draws the same"
            );
            if let Some(FaultAction::CutAfter { bytes } | FaultAction::StallAfter { bytes, .. }) = a
            {
                assert!(bytes < 1000);
            }
            *counts
                .entry(a.map(|a| a.name()).unwrap_or("none"))
                .or_insert(0) += 1;
        }
        // Binomial with n = 4000: these bounds are over 6 standard deviations wide.
        let within = |name: &str, p: f64| {
            let n = counts.get(name).copied().unwrap_or(0) as f64;
            let sd = (4000.0 * p * (1.0 - p)).sqrt();
            assert!((n - 4000.0 * p).abs() < 6.0 * sd, "{name}: {n} of 4000");
        };
        within("cut_after", 0.25);
        within("stall_after", 0.10);
        within("trickle", 0.05);
        within("none", 0.60);
        let other_seed = mix.clone().seed(8);
        assert!(
            (0..50u64).any(|i| {
                let key = format!("k{i}");
                mix.draw(None, &key, 0, 1000) != other_seed.draw(None, &key, 0, 1000)
            }),
            "another seed draws otherwise"
        );
    }

    #[test]
    fn every_nth_connection() {
        let mix = FaultMix::parse("trickle=1/3:100").unwrap();
        let hits: Vec<bool> = (0..9)
            .map(|c| mix.draw(Some(c), "k", 0, 10).is_some())
            .collect();
        assert_eq!(
            hits,
            [false, false, true, false, false, true, false, false, true]
        );
        assert_eq!(mix.draw(None, "k", 0, 10), None);
    }
}
