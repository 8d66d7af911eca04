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

macro_rules! text_column {
    ($($t:ty),*) => {$(
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
                <String as Encode<'_, Any>>::encode(self.to_string(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                <String as Decode<'r, Any>>::decode(value).map(Self::from)
            }
        }
    )*};
}

text_column!(VehicleId, CommandId, TenantId, OemId);

macro_rules! enum_column {
    ($($t:ty: $parse:expr),* $(,)?) => {$(
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
                <String as Encode<'_, Any>>::encode(self.as_text(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let name = <String as Decode<'r, Any>>::decode(value)?;
                let parse: fn(&str) -> Option<$t> = $parse;
                parse(&name).ok_or_else(|| format!("no such value: {name:?}").into())
            }
        }
    )*};
}

/// The stored form of a state enum.
trait AsText {
    fn as_text(&self) -> String;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl AsText for $t {
            fn as_text(&self) -> String {
                self.as_str().to_string()
            }
        }
    )*};
}

named!(
    AccountStatus,
    CommandStatus,
    RelockState,
    DeliveryStatus,
    Kind
);

enum_column!(
    AccountStatus: |s| s.parse().ok(),
    CommandStatus: |s| s.parse().ok(),
    RelockState: |s| s.parse().ok(),
    DeliveryStatus: |s| s.parse().ok(),
    Kind: Kind::parse,
    EventTypes: EventTypes::parse,
);

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
