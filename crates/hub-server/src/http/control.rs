//! The control routes under `/_control/`: faults, the log, the link (see the crate docs).

use http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Resp, Shared, error, json_response};
use crate::faults::Fault;
use crate::mix::FaultMix;

pub(super) async fn control(ctx: &mut Ctx, what: &str) -> Resp {
    let shared = ctx.shared.clone();
    match (ctx.method.as_str(), what) {
        ("POST", "faults") => {
            let body = match ctx.read_body().await {
                Ok(b) => b,
                Err(r) => return r,
            };
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum OneOrMany {
                Many(Vec<Fault>),
                One(Box<Fault>),
            }
            let faults = match serde_json::from_slice::<OneOrMany>(&body) {
                Ok(OneOrMany::Many(v)) => v,
                Ok(OneOrMany::One(f)) => vec![*f],
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        None,
                        &format!("invalid fault JSON: {e}"),
                    );
                }
            };
            let queued = faults.len();
            for f in faults {
                shared.faults.push(f);
            }
            json_response(StatusCode::OK, &json!({ "queued": queued }))
        }
        ("GET", "faults") => json_response(StatusCode::OK, &json!(shared.faults.pending())),
        ("DELETE", "faults") => {
            shared.faults.clear();
            json_response(StatusCode::OK, &json!({}))
        }
        ("POST", "reset") => {
            shared.faults.clear();
            shared.log.clear();
            shared.link.reset_stats();
            json_response(StatusCode::OK, &json!({}))
        }
        ("GET", "link") => json_response(StatusCode::OK, &link_json(&shared)),
        ("POST", "link") => {
            let body = match ctx.read_body().await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match set_link(&shared, &body) {
                Ok(()) => json_response(StatusCode::OK, &link_json(&shared)),
                Err(message) => error(StatusCode::BAD_REQUEST, None, &message),
            }
        }
        ("GET", "log") => {
            let counts: serde_json::Map<String, Value> = shared
                .log
                .counts()
                .into_iter()
                .filter_map(|(route, n)| {
                    let key = serde_json::to_value(route).ok()?.as_str()?.to_owned();
                    Some((key, json!(n)))
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({ "entries": shared.log.entries(), "counts": counts }),
            )
        }
        ("DELETE", "log") => {
            shared.log.clear();
            json_response(StatusCode::OK, &json!({}))
        }
        _ => error(StatusCode::NOT_FOUND, None, "unknown control route"),
    }
}

/// `GET /_control/link`: the CDN link's settings and counters.
fn link_json(shared: &Shared) -> Value {
    let mix = shared.mix.get();
    json!({
        "rate": shared.link.rate(),
        "latency_ms": u64::try_from(shared.link.latency().as_millis()).unwrap_or(u64::MAX),
        "faults": mix.as_ref().map(ToString::to_string),
        "seed": mix.as_ref().map(FaultMix::seed_value),
        "stats": shared.link.stats(),
    })
}

/// A field that is present, `null` or not: absent is `None` (by `default`), `null` is `Some(None)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// `POST /_control/link`: every field is optional; `null` turns the cap or the mix off. The
/// whole body is checked before anything changes.
fn set_link(shared: &Shared, body: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LinkUpdate {
        #[serde(default, deserialize_with = "present")]
        rate: Option<Option<Value>>,
        #[serde(default)]
        latency_ms: Option<u64>,
        #[serde(default, deserialize_with = "present")]
        faults: Option<Option<String>>,
        #[serde(default)]
        seed: Option<u64>,
    }
    let update: LinkUpdate =
        serde_json::from_slice(body).map_err(|e| format!("invalid link JSON: {e}"))?;
    let rate = match update.rate {
        None => None,
        Some(None) => Some(None),
        Some(Some(Value::Number(n))) => {
            Some(Some(n.as_u64().ok_or_else(|| {
                format!("invalid rate {n}: expected bytes per second")
            })?))
        }
        Some(Some(Value::String(s))) => Some(Some(
            crate::link::parse_rate(&s).map_err(|e| e.to_string())?,
        )),
        Some(Some(other)) => return Err(format!("invalid rate {other}: a number or \"40M\"")),
    };
    let mix = match update.faults {
        None => update
            .seed
            .map(|seed| shared.mix.get().map(|m| m.seed(seed))),
        Some(None) => Some(None),
        Some(Some(text)) => {
            let mix = FaultMix::parse(&text).map_err(|e| e.to_string())?;
            Some(Some(mix.seed(update.seed.unwrap_or(0))))
        }
    };
    if let Some(rate) = rate {
        shared.link.set_rate(rate.filter(|&r| r > 0));
    }
    if let Some(ms) = update.latency_ms {
        shared
            .link
            .set_latency(std::time::Duration::from_millis(ms));
    }
    if let Some(mix) = mix {
        shared.set_mix(mix);
    }
    Ok(())
}
