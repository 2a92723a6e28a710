//! Why a job stopped short, or waits to try again, as a class: the card turns it into a plain
//! sentence for everyone (the technical detail stays in `JobView::error`).
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The model server could not be reached (down, elsewhere, or a wrong address).
    Unreachable,
    /// The model server does not have the post's model.
    ModelMissing,
    /// The model server was busy or had a passing problem (HTTP 5xx, 429, 408).
    Busy,
    /// The model server turned the request down (another HTTP 4xx).
    Refused,
    /// The answer broke off partway: an error in the middle of the stream, a dropped
    /// connection, or something that was not the model server's format.
    BrokeOff,
    /// Nothing arrived for the stall timeout.
    Stalled,
    /// The answer took longer than the deadline.
    TooSlow,
    /// The server stopped during the generation too many times.
    Interrupted,
    /// Its author stopped it: a choice, not a fault.
    Stopped,
    /// A class this build does not know (a newer server's).
    Other,
}

impl Failure {
    /// The class spelled `name`, or [`Failure::Other`] for a name this build does not know.
    pub fn named(name: &str) -> Self {
        Failure::ALL
            .into_iter()
            .find(|class| class.as_str() == name)
            .unwrap_or(Failure::Other)
    }

    /// The class as the wire and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::ModelMissing => "model_missing",
            Failure::Busy => "busy",
            Failure::Refused => "refused",
            Failure::BrokeOff => "broke_off",
            Failure::Stalled => "stalled",
            Failure::TooSlow => "too_slow",
            Failure::Interrupted => "interrupted",
            Failure::Stopped => "stopped",
            Failure::Other => "other",
        }
    }

    /// Every class, spelled as the wire and the database spell them.
    pub const ALL: [Failure; 10] = [
        Failure::Unreachable,
        Failure::ModelMissing,
        Failure::Busy,
        Failure::Refused,
        Failure::BrokeOff,
        Failure::Stalled,
        Failure::TooSlow,
        Failure::Interrupted,
        Failure::Stopped,
        Failure::Other,
    ];
}

/// Read by name, with any name this build does not know as [`Failure::Other`]: the derive's
/// `#[serde(other)]` would do the same with a visitor of its own in the browser bundle, where
/// reading a `String` costs nothing new.
impl<'de> Deserialize<'de> for Failure {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Failure::named(&String::deserialize(deserializer)?))
    }
}

/// In the database a class is its name, read like the wire reads it: a row written by a newer
/// release (a class this one does not know) reads as [`Failure::Other`] rather than failing
/// the whole query, so rolling back a release never breaks the wall.
#[cfg(feature = "ssr")]
mod database {
    use sqlx::{encode::IsNull, error::BoxDynError, Database, Decode, Encode, Type, ValueRef as _};

    use super::Failure;

    impl<DB: Database> Type<DB> for Failure
    where
        str: Type<DB>,
    {
        fn type_info() -> DB::TypeInfo {
            <str as Type<DB>>::type_info()
        }

        fn compatible(ty: &DB::TypeInfo) -> bool {
            <str as Type<DB>>::compatible(ty)
        }
    }

    impl<'q, DB: Database> Encode<'q, DB> for Failure
    where
        &'q str: Encode<'q, DB>,
    {
        fn encode_by_ref(
            &self,
            buf: &mut <DB as Database>::ArgumentBuffer<'q>,
        ) -> Result<IsNull, BoxDynError> {
            self.as_str().encode_by_ref(buf)
        }
    }

    impl<'r, DB: Database> Decode<'r, DB> for Failure
    where
        &'r str: Decode<'r, DB>,
    {
        fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
            debug_assert!(!value.is_null(), "NULL is read as Option::None");
            Ok(Failure::named(<&str as Decode<DB>>::decode(value)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn every_class_reads_back_as_written_and_an_unknown_one_as_other() {
        for class in Failure::ALL {
            let written = serde_json::to_value(class).unwrap();
            assert_eq!(written, class.as_str());
            assert_eq!(serde_json::from_value::<Failure>(written).unwrap(), class);
        }
        let newer: Failure = serde_json::from_str("\"quota\"").unwrap();
        assert_eq!(newer, Failure::Other);
        assert!(
            serde_json::from_str::<Failure>("7").is_err(),
            "a class is a name"
        );
    }
}
