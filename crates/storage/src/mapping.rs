//! The one place in this crate that talks to the kernel's memory manager directly.
//!
//! The block cache must be memory that the kernel accounts exactly and that can be handed back
//! exactly. The heap cannot do that: glibc keeps freed chunks for reuse, so a cache built from
//! `Vec`s would shrink in the program's eyes while the process's resident set stayed where it was,
//! and the harness would be measuring the allocator instead of the cache. So the cache is one
//! anonymous private mapping:
//!
//! * **Reserve** the whole budget once with `mmap`. That costs address space, not memory: an
//!   untouched anonymous page is not resident and does not count in RSS.
//! * **Grow** by writing into pages. The first write to a page faults in a fresh frame, and RSS
//!   rises by exactly one page.
//! * **Shrink** with `madvise(MADV_DONTNEED)`. For a private anonymous mapping the kernel frees
//!   the frames at once (RSS falls immediately) and the range reads as zeros afterwards.
//!
//! Everything unsafe is in this module; [`Mapping`] offers a safe interface on top of it.

use std::io;
use std::ptr::NonNull;

/// The size of a memory page in bytes, as the kernel reports it (4096 on most x86-64 machines).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    // sysconf returns -1 only for an unknown name; _SC_PAGESIZE is always known on Linux.
    // Fall back to the common size rather than panic.
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// An anonymous, private, read-write mapping of a fixed length, unmapped on drop.
///
/// Invariant: `ptr` points to the start of a live mapping of exactly `len` bytes (`len > 0`),
/// created by [`Mapping::new`] and owned by this value alone.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value alone (no thread-local state, no
// aliasing handles), so moving it to another thread is fine.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only ever hands out `&[u8]`; every mutation, including `discard`, takes
// `&mut self`. There is no interior mutability, so shared references across threads are fine.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Reserves `len` bytes of address space (`len > 0`). Nothing becomes resident until written.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses: it cannot overlap
        // any memory Rust knows about. fd -1 and offset 0 are what MAP_ANONYMOUS requires.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            // mmap never returns NULL for a kernel-chosen address, but do not trust it blindly.
            return Err(io::Error::other("mmap returned a null pointer"));
        };
        // Ask for small pages only: with transparent huge pages, touching one byte could make a
        // whole 2 MiB resident and the cache would no longer be exact. Advisory; a kernel without
        // THP rejects it, which is fine.
        // SAFETY: the range is exactly the mapping just created.
        let _ = unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_NOHUGEPAGE) };
        Ok(Self { ptr, len })
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The whole mapping. Pages never written (or discarded) read as zeros.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: by the invariant, `ptr..ptr+len` is a live mapping owned by `self`, readable,
        // and every byte is initialised (the kernel zero-fills anonymous pages). The borrow of
        // `self` keeps it alive and prevents mutation for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole mapping, writable. Writing to a page makes it resident.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and the mapping is writable; `&mut self` guarantees this is
        // the only reference into it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Gives the frames behind `offset..offset + len` back to the kernel; RSS falls at once and
    /// the range reads as zeros afterwards. Both numbers must be multiples of the page size.
    pub(crate) fn discard(&mut self, offset: usize, len: usize) -> io::Result<()> {
        let page = page_size();
        let end = offset.checked_add(len);
        if !offset.is_multiple_of(page)
            || !len.is_multiple_of(page)
            || end.is_none_or(|end| end > self.len)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "discard {offset}+{len} is not page-aligned inside {}",
                    self.len
                ),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range was checked to lie inside the mapping and to be page-aligned.
        // `&mut self` means no slice into the mapping is alive, so nobody observes the contents
        // turning to zeros. MADV_DONTNEED on private anonymous memory never fails for a valid,
        // unlocked range.
        let rc = unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(offset).cast(),
                len,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: by the invariant this is exactly the mapping created in `new`, and dropping
        // `self` ends every borrow of it. An error could only mean a bad range, which the
        // invariant rules out; nothing useful can be done about it in drop anyway.
        let _ = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
