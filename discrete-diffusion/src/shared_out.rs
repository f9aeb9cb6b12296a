//! A raw pointer into an output buffer, shared by the threads of one parallel kernel that each
//! write a disjoint part of it (every use states its partition).

/// See the module doc.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);
// SAFETY: the pointer is only an address; every user writes elements no other thread touches.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The start of `buffer`.
    pub(crate) fn new(buffer: &mut [f32]) -> Self {
        Self(buffer.as_mut_ptr())
    }

    /// The address `offset` elements in (a method taking `self`, so that closures capture the
    /// `Sync` wrapper rather than the raw pointer). Computing it is safe; writing through it is
    /// the caller's `unsafe`, inside the buffer and its own part of it.
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }

    /// The wrapper `offset` elements in.
    pub(crate) fn offset(self, offset: usize) -> Self {
        Self(self.at(offset))
    }
}
