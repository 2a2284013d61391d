//! floorwatch edge.
