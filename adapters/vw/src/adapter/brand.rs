//! What differs between the Volkswagen Group's brands on one backend (CARIAD's BFF):
//! the adapter's declaration (its login above all) and where and how the owner's cars
//! are listed. Data only: the BFF translation is the adapter's.

use keyway_adapter::{AdapterInfo, OemError, OemVehicle};

/// What differs between the Group's brands served by the same BFF (Volkswagen, Audi):
/// the adapter's declaration and where and how the owner's cars are listed.
#[derive(Debug)]
pub struct Brand {
    /// What the adapter declares for this brand.
    pub info: &'static AdapterInfo,
    /// The owner's vehicle list.
    pub list: List,
}

/// How a brand lists the owner's cars: `GET path`, or `POST path` with a GraphQL
/// `query`, at the vehicles base; `parse` reads each car and whether it can lock and
/// unlock.
#[derive(Debug)]
pub struct List {
    /// The path.
    pub path: &'static str,
    /// The GraphQL query to `POST`, if the list is a GraphQL query.
    pub query: Option<&'static str>,
    /// Reads the answer.
    pub parse: fn(&[u8]) -> Result<ListedCars, OemError>,
}

/// The cars a list names, each with whether it can lock and unlock.
pub type ListedCars = Vec<(OemVehicle, bool)>;
