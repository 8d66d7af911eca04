//! Typed columns: the id types ([`crate::ids`]), each text in its column, read and
//! bound as a `String` is; and the state enums (command, account and delivery status,
//! relock state, event type), each its snake-case name in its column — a name no
//! variant has is refused when read (the store's `Corrupt`), never guessed.

use sqlx::any::{Any, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::ids::{CommandId, OemId, TenantId, VehicleId};
use crate::store::{AccountStatus, CommandStatus, DeliveryStatus, EventTypes, Kind, RelockState};

/// Makes each type a text column: `to` writes a value's text, `from` reads it back
/// (`None`: no value has that text, refused when read).
macro_rules! text_column {
    ($($t:ty: $to:expr, $from:expr;)*) => {$(
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <String as Type<Any>>::type_info()
            }
        }

        impl Encode<'_, Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                let to: fn(&$t) -> String = $to;
                <String as Encode<'_, Any>>::encode(to(self), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <String as Decode<'r, Any>>::decode(value)?;
                let from: fn(&str) -> Option<$t> = $from;
                from(&text).ok_or_else(|| format!("no such value: {text:?}").into())
            }
        }
    )*};
}

text_column! {
    VehicleId: |v| v.to_string(), |s| Some(s.into());
    CommandId: |v| v.to_string(), |s| Some(s.into());
    TenantId: |v| v.to_string(), |s| Some(s.into());
    OemId: |v| v.to_string(), |s| Some(s.into());
    AccountStatus: |v| v.as_str().to_string(), |s| s.parse().ok();
    CommandStatus: |v| v.as_str().to_string(), |s| s.parse().ok();
    RelockState: |v| v.as_str().to_string(), |s| s.parse().ok();
    DeliveryStatus: |v| v.as_str().to_string(), |s| s.parse().ok();
    Kind: |v| v.as_str().to_string(), Kind::parse;
    EventTypes: EventTypes::as_text, EventTypes::parse;
}

#[cfg(test)]
mod tests {
    use super::super::{SqlStore, rows::get};
    use crate::store::{CommandStatus, Kind, StoreError, VehicleId};

    #[tokio::test]
    async fn typed_columns_read_back_and_an_unknown_name_is_refused_as_corrupt() {
        let store = SqlStore::memory().await.unwrap();
        let row = sqlx::query(
            "SELECT 'veh_1' AS id, 'unknown' AS status, 'command.succeeded' AS type, \
             'sideways' AS bad",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(get::<VehicleId>(&row, "id").unwrap(), "veh_1");
        assert_eq!(
            get::<CommandStatus>(&row, "status").unwrap(),
            CommandStatus::Unknown
        );
        assert_eq!(get::<Kind>(&row, "type").unwrap(), Kind::CommandSucceeded);
        let bad = get::<CommandStatus>(&row, "bad").unwrap_err();
        assert!(
            matches!(&bad, StoreError::Corrupt(m) if m.contains("sideways")),
            "{bad:?}"
        );
    }
}
