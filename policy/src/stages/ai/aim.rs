//! Pointing an exchange at a model entry's provider: the translated body, the target, the
//! provider's credential fields and its upstream group; and the answer id used when a
//! provider gives none.

use super::config::{Model, Provider};
use super::flow::Flow;
use super::send::translate;
use crate::exchange::Exchange;

/// Points the request at model entry `m`'s provider: body, target, fields from `f.added`
/// on (the ones the stage adds), group; its fallbacks go first in what is left to try.
/// `Err` when the request cannot be translated for it.
pub fn aim(
    models: &[Model],
    providers: &[Provider],
    f: &mut Flow,
    m: usize,
    ex: &mut Exchange,
) -> Result<(), String> {
    let entry = models.get(m).ok_or("no such model")?;
    let p = providers
        .get(entry.provider)
        .ok_or("the model has no provider")?;
    let (out, target) = translate(&f.request, &f.asked, entry, p)?;
    ex.edits.body = Some(out);
    ex.set_target(target.into_bytes());
    ex.edits.fields.add.truncate(f.added);
    ex.edits.fields.add(b"Content-Type", b"application/json");
    for (name, value) in &p.auth {
        ex.edits.fields.add(name.as_bytes(), value.as_bytes());
    }
    ex.upstream.group = Some(p.upstream);
    f.model = m;
    f.provider = entry.provider;
    f.kind = p.kind;
    // its own fallbacks come first, then what was left of the ones before
    let mut rest = entry.fallback.clone();
    rest.extend(f.rest.drain(..).filter(|n| !entry.fallback.contains(n)));
    f.rest = rest;
    f.tried.push(m);
    Ok(())
}

/// The id of an answer whose provider gives none.
pub fn fallback_id(ex: &Exchange) -> String {
    let id = String::from_utf8_lossy(ex.request_id.as_bytes());
    if id.is_empty() {
        format!("chatcmpl-{}", ex.serial)
    } else {
        format!("chatcmpl-{id}")
    }
}
