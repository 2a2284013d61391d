//! floorwatch bridge.
