//! floorwatch scheduler.
