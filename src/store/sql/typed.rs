//! The id types ([`crate::ids`]) in the store: each is text in its column, read and
//! bound as a `String` is.

use sqlx::any::{Any, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::ids::{CommandId, OemId, TenantId, VehicleId};

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
