//! Azure: the az CLI wrapper, what it prints, and what azsync runs on the VMs it makes.

pub mod az;
pub mod model;
pub mod names;
pub mod reach;
pub mod scripts;
