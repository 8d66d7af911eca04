//! Distances on the Earth's surface, for geofences and for telling a car that moved
//! from one whose position merely jittered.

/// Great-circle distance in metres (haversine on a spherical Earth).
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R: f64 = 6_371_008.8;
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dla = la2 - la1;
    let dlo = (b.1 - a.1).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        // Berlin Brandenburg Gate to the Reichstag: about 370 m.
        let d = distance_m((52.516275, 13.377704), (52.518620, 13.376198));
        assert!((250.0..450.0).contains(&d), "{d}");
        assert_eq!(distance_m((10.0, 10.0), (10.0, 10.0)), 0.0);
    }
}
