//! no_std kernels
#![no_std]
