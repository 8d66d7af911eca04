//! The vehicle changes other replicas announce (PostgreSQL `LISTEN`/`NOTIFY`): each
//! finished command notifies its car's id on the store's channel, and
//! [`changes`] turns the channel into a stream that reconnects by itself — one
//! [`VehicleChange::Changed`] per notice, and a [`VehicleChange::Missed`] whenever
//! notices may have been lost (a dropped connection, a reconnect).

use std::time::Duration;

use futures_util::stream;
use keyway_adapter::Secret;
use sqlx::postgres::PgListener;

use super::super::{VehicleChange, VehicleChanges};

/// Where the notices come from, and how far the stream got.
struct Follow {
    url: Secret,
    channel: String,
    listener: Option<PgListener>,
    connected_before: bool,
}

/// The changes announced on `channel` of the database at `url`, until the stream is
/// dropped.
pub(super) fn changes(url: Secret, channel: String) -> VehicleChanges {
    let start = Follow {
        url,
        channel,
        listener: None,
        connected_before: false,
    };
    Box::pin(stream::unfold(start, |s| async { Some(next(s).await) }))
}

/// The next change: waits for a notice, reconnecting (once a second) while the
/// database cannot be reached.
async fn next(mut s: Follow) -> (VehicleChange, Follow) {
    loop {
        let mut listener = match s.listener.take() {
            Some(l) => l,
            None => match listen(&s).await {
                Ok(l) if s.connected_before => {
                    s.listener = Some(l);
                    return (VehicleChange::Missed, s);
                }
                Ok(l) => {
                    s.connected_before = true;
                    l
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for change notifications");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let id = n.payload().to_string();
                s.listener = Some(listener);
                return (VehicleChange::Changed(id), s);
            }
            // The connection dropped: sqlx reconnects; notices may be lost.
            Ok(None) => {
                s.listener = Some(listener);
                return (VehicleChange::Missed, s);
            }
            Err(e) => {
                tracing::warn!(error = %e, "change notifications lost; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn listen(s: &Follow) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(s.url.expose()).await?;
    l.listen(&s.channel).await?;
    Ok(l)
}
