//! The block cache: a resident prefix of one [`Mapping`], measured in whole blocks.
//!
//! Slot `i` of the cache occupies bytes `i * block_size .. (i + 1) * block_size` of the mapping.
//! The cache always holds slots `0 .. resident_blocks`: growing fills the next slots with their
//! "disk" contents ([`disk_byte`]), shrinking drops the tail. A prefix (rather than, say, an LRU
//! set) keeps the memory accounting trivial: the resident bytes are exactly
//! `resident_blocks * block_size`, and the kernel agrees, page for page.

use std::io;

use crate::mapping::Mapping;

/// The byte every position of block slot `slot` holds on the lab's synthetic "disk".
///
/// Never zero: a page of zeros written to fresh anonymous memory still becomes resident, but a
/// non-zero pattern also makes it obvious in a test (or a core dump) that the bytes are real.
pub(crate) fn disk_byte(slot: u64) -> u8 {
    // 251 is prime, so neighbouring slots differ; +1 keeps the byte away from zero.
    (slot % 251) as u8 + 1
}

/// A block cache over one anonymous mapping. Not synchronised: wrap it in a lock to share.
#[derive(Debug)]
pub(crate) struct BlockCache {
    map: Mapping,
    /// Block size in bytes; a multiple of the page size, so every block boundary is a page
    /// boundary and `discard` never cuts a page that still holds a cached block.
    block_size: usize,
    /// Slots `0..resident_blocks` are cached.
    resident_blocks: usize,
}

impl BlockCache {
    /// Reserves `capacity` bytes of address space for blocks of `block_size` bytes. Nothing is
    /// resident yet. `block_size` must be a non-zero multiple of the page size.
    pub(crate) fn new(capacity: usize, block_size: usize) -> io::Result<Self> {
        if block_size == 0 || !block_size.is_multiple_of(crate::mapping::page_size()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block size {block_size} is not a multiple of the page size"),
            ));
        }
        Ok(Self {
            map: Mapping::new(capacity)?,
            block_size,
            resident_blocks: 0,
        })
    }

    /// Bytes currently cached (and resident).
    pub(crate) fn cached_bytes(&self) -> u64 {
        (self.resident_blocks * self.block_size) as u64
    }

    /// Number of cached slots.
    #[cfg(test)]
    pub(crate) fn cached_blocks(&self) -> u64 {
        self.resident_blocks as u64
    }

    /// Moves the cache to `bytes` (rounded down to whole blocks, capped at the capacity) in one
    /// step. Growing writes every new block; shrinking returns the dropped tail to the kernel.
    pub(crate) fn resize(&mut self, bytes: u64) -> io::Result<()> {
        let max_blocks = self.map.len() / self.block_size;
        let want = usize::try_from(bytes / self.block_size as u64)
            .unwrap_or(usize::MAX)
            .min(max_blocks);
        let bs = self.block_size;
        let old = self.resident_blocks;
        if want > old {
            let mem = self.map.as_mut_slice();
            for slot in old..want {
                mem[slot * bs..(slot + 1) * bs].fill(disk_byte(slot as u64));
            }
        } else if want < old {
            self.map.discard(want * bs, (old - want) * bs)?;
        }
        self.resident_blocks = want;
        Ok(())
    }

    /// The cached bytes of `slot`, or `None` if that slot is not cached.
    pub(crate) fn block(&self, slot: u64) -> Option<&[u8]> {
        let slot = usize::try_from(slot)
            .ok()
            .filter(|&s| s < self.resident_blocks)?;
        let bs = self.block_size;
        Some(&self.map.as_slice()[slot * bs..(slot + 1) * bs])
    }

    /// The cached bytes of `slot` for writing, or `None` if that slot is not cached.
    pub(crate) fn block_mut(&mut self, slot: u64) -> Option<&mut [u8]> {
        let slot = usize::try_from(slot)
            .ok()
            .filter(|&s| s < self.resident_blocks)?;
        let bs = self.block_size;
        Some(&mut self.map.as_mut_slice()[slot * bs..(slot + 1) * bs])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's resident set in bytes, from the second field of /proc/self/statm.
    fn own_rss() -> u64 {
        (crate::sizing::Meters::new(None, false).own_rss()).expect("read /proc/self/statm")
    }

    #[test]
    fn growing_the_cache_raises_rss_by_the_grown_size_and_shrinking_lowers_it_again() {
        const MIB: u64 = 1 << 20;
        let mut cache = BlockCache::new(64 << 20, 64 << 10).expect("map 64 MiB");
        let before = own_rss();

        cache.resize(32 * MIB).expect("grow");
        let grown = own_rss();
        assert_eq!(cache.cached_bytes(), 32 * MIB);
        let rise = grown.saturating_sub(before);
        // Other tests of this binary run on other threads and allocate a little; allow 4 MiB.
        assert!(
            rise.abs_diff(32 * MIB) < 4 * MIB,
            "RSS rose by {rise} bytes for a 32 MiB cache"
        );

        cache.resize(8 * MIB).expect("shrink");
        let shrunk = own_rss();
        let fall = grown.saturating_sub(shrunk);
        assert!(
            fall.abs_diff(24 * MIB) < 4 * MIB,
            "RSS fell by {fall} bytes after dropping 24 MiB of cache"
        );
        assert_eq!(cache.cached_blocks(), 128);
    }

    #[test]
    fn cached_blocks_hold_the_disk_pattern_and_dropped_blocks_are_gone() {
        let mut cache = BlockCache::new(1 << 20, 64 << 10).expect("map");
        cache.resize(100 << 10).expect("grow"); // rounds down to one block
        assert_eq!(cache.cached_blocks(), 1);
        assert!(
            cache
                .block(0)
                .expect("slot 0")
                .iter()
                .all(|&b| b == disk_byte(0))
        );
        assert!(cache.block(1).is_none());

        cache.resize(u64::MAX).expect("grow to capacity");
        assert_eq!(cache.cached_blocks(), 16);
        cache.block_mut(15).expect("slot 15")[0] = 0;
        assert!(
            cache
                .block(15)
                .expect("slot 15")
                .iter()
                .skip(1)
                .all(|&b| b == disk_byte(15))
        );

        cache.resize(0).expect("shrink to nothing");
        assert_eq!(cache.cached_bytes(), 0);
        assert!(cache.block(0).is_none());
    }

    #[test]
    fn a_block_size_that_is_not_whole_pages_is_refused() {
        assert!(BlockCache::new(1 << 20, 1000).is_err());
        assert!(BlockCache::new(1 << 20, 0).is_err());
    }
}
