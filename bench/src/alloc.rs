//! Heap allocations per exchange, counted in this process by its global allocator, through
//! the pipeline `app::build` assembles (real JWKS client with cached keys), without HTTP.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use claimex::signer::SigningAlg;

use crate::report::Report;
use crate::{Bench, Signer};

/// Counts heap allocations (for the bytes-per-exchange figure).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations section of the report.
pub fn run(bench: &mut Bench, out: &mut Report) {
    let _ = writeln!(
        out,
        "\nheap allocations per exchange: in-process, app::build's pipeline (real JWKS client, cached keys), \
         no HTTP layer, no audit subscriber; mean of 2000"
    );
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let cache = bench.dir.path().join("cache-load");
        let loaded = bench
            .claimex(&Signer::Local(alg), Some(&cache), &[])
            .load()
            .unwrap_or_else(|e| panic!("the configuration does not load: {e:#}"));
        let token = bench.token();
        let request = claimex::exchange::ExchangeRequest {
            kind: claimex::subject::SubjectKind::Oidc,
            credential: &token,
            issuer_id: Some("github"),
            audience: None,
        };
        // A runtime of its own: the app's background tasks end with it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (count, bytes) = rt.block_on(async {
            let app = claimex::app::build(&loaded.config).await.unwrap();
            for _ in 0..200 {
                let (result, _) = app.exchanger.exchange(&request).await;
                result.unwrap();
            }
            let n = 2000;
            let (a0, b0) = (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed));
            for _ in 0..n {
                let (result, _) = app.exchanger.exchange(&request).await;
                result.unwrap();
            }
            let (a1, b1) = (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed));
            ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
        });
        let _ = writeln!(
            out,
            "  {}: {count:.0} allocations, {:.1} KiB allocated per exchange",
            alg.as_str(),
            bytes / 1024.0
        );
    }
}
