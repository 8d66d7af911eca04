//! Other replicas' changes (cluster mode): listens on PostgreSQL for the cars another
//! replica announces a change of, and drops this replica's cached lock state and record
//! of each; after a lost connection, every cache.

use std::sync::Arc;
use std::time::Duration;

use super::Fleet;

/// Listens for vehicle changes other replicas announce and drops this replica's
/// cached lock state and record of that car. After a lost connection every cache is
/// dropped (notifications may have been missed). Runs until the task is dropped.
pub async fn follow_changes(url: String, channel: String, fleet: Arc<Fleet>) {
    use sqlx::postgres::PgListener;
    let mut connected_before = false;
    loop {
        let listener = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen(&channel).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        match listener {
            Ok(mut l) => {
                if connected_before {
                    fleet.invalidate_all();
                }
                connected_before = true;
                loop {
                    match l.try_recv().await {
                        Ok(Some(n)) => {
                            let id = n.payload();
                            fleet.invalidate_security(id);
                            fleet.invalidate_vehicle(id);
                        }
                        // The connection dropped: sqlx reconnects; notices may be lost.
                        Ok(None) => fleet.invalidate_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "change notifications lost; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for change notifications"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
