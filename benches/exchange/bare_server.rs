//! What a server around the exchange costs without an HTTP framework (issue 15, part 3).
//!
//! `CLAIMEX_BENCH_BARE_SERVER=1 taskset -c 1 <exchange bench binary>` answers wrk (started
//! here, on CPU 0, four keep-alive connections) from this thread with plain blocking sockets:
//! one read of a GET, one fixed 1 KB answer, and what a server adds around an exchange,
//! measured in phases interleaved round after round: the socket I/O alone, the exchange alone,
//! both, both plus the audit line (tracing's JSON layer writing each line to a file, as
//! `claimex serve` writes it), and the audit line alone. Costs are this thread's CPU time
//! (`/proc/thread-self/schedstat`), so waiting for wrk does not count. The result bounds what
//! any server can keep of the in-process rate on this host: the bare loop pays the kernel's
//! loopback path and the audit line, not actix's dispatcher.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{World, claims, mint_inbound, oidc_request};
use claimex::signer::SigningAlg;

/// Rounds of phases; each phase serves this many requests.
const ROUNDS: usize = 40;
const PER_PHASE: usize = 500;
const PHASES: [&str; 5] = [
    "io",
    "exchange",
    "io+exchange",
    "io+exchange+audit",
    "audit",
];

/// This thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat (Linux) gives this thread's CPU time")
}

/// wrk on CPU 0 against `port`, stopped when dropped.
struct Wrk(Child);

impl Wrk {
    fn start(port: u16) -> Wrk {
        let child = Command::new("taskset")
            .args(["-c", "0", "wrk", "-t1", "-c4", "-d600s"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run `taskset -c 0 wrk` (apt-get install -y wrk)");
        Wrk(child)
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server side of wrk's connections: one request read, one fixed answer written.
struct Answerer {
    listener: TcpListener,
    streams: Vec<TcpStream>,
    next: usize,
    answer: Vec<u8>,
    buf: Vec<u8>,
}

impl Answerer {
    fn accept(listener: &TcpListener) -> TcpStream {
        let (stream, _) = listener.accept().expect("accept wrk's connection");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
    }

    fn serve_one(&mut self) {
        let slot = self.next % self.streams.len();
        self.next += 1;
        let mut have = 0;
        loop {
            let n = self.streams[slot]
                .read(&mut self.buf[have..])
                .expect("read wrk's request");
            if n == 0 {
                // wrk checks the address with a connection it closes at once: take the next.
                self.streams[slot] = Answerer::accept(&self.listener);
                have = 0;
                continue;
            }
            have += n;
            if self.buf[..have].ends_with(b"\r\n\r\n") {
                break;
            }
            assert!(
                have < self.buf.len(),
                "wrk's request is larger than expected"
            );
        }
        self.streams[slot]
            .write_all(&self.answer)
            .expect("write the answer");
    }
}

/// The audit line as `claimex serve` writes it (its JSON layer), to a file.
fn log_audit_lines_to(path: &std::path::Path) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let file = std::fs::File::create(path).expect("create the audit log");
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(claimex::cli::log_format::json_layer(std::sync::Mutex::new(
            file,
        )))
        .init();
}

pub fn run(world: &World, rt: &tokio::runtime::Runtime) {
    let token = mint_inbound(&world.inbound_key, &claims(1500));
    let es = world.exchanger(rt, SigningAlg::Es256, 1);
    let exchange = || {
        let (result, audit) = rt.block_on(es.exchange(&oidc_request(&token, Some("github"))));
        result.expect("the exchange succeeds");
        audit
    };
    log_audit_lines_to(&world.dir.join("audit.log"));
    let one_audit = exchange();

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let _wrk = Wrk::start(port);
    let streams = (0..4).map(|_| Answerer::accept(&listener)).collect();
    let body = vec![b'a'; 900];
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let mut server = Answerer {
        listener,
        streams,
        next: 0,
        answer,
        buf: vec![0; 8192],
    };

    // cpu[phase][round]: µs of this thread's CPU per request.
    let mut cpu = vec![Vec::with_capacity(ROUNDS); PHASES.len()];
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..PHASES.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for phase in order {
            let started = thread_cpu_ns();
            for _ in 0..PER_PHASE {
                match phase {
                    0 => server.serve_one(),
                    1 => drop(exchange()),
                    2 => {
                        drop(exchange());
                        server.serve_one();
                    }
                    3 => {
                        exchange().emit(Ok(()));
                        server.serve_one();
                    }
                    _ => one_audit.emit(Ok(())),
                }
            }
            let spent = (thread_cpu_ns() - started) as f64 / 1e3 / PER_PHASE as f64;
            cpu[phase].push(spent);
        }
    }
    let median = |f: &dyn Fn(usize) -> f64| {
        let mut v: Vec<f64> = (0..ROUNDS).map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "bare server (issue 15 part 3): wrk -c4 on CPU 0, this thread's CPU µs per request, median of {ROUNDS} rounds"
    );
    for (phase, name) in PHASES.iter().enumerate() {
        println!("  {name:<20} {:>8.1}", median(&|r| cpu[phase][r]));
    }
    println!(
        "  interleaving penalty (io+exchange - io - exchange): {:.1} µs",
        median(&|r| cpu[2][r] - cpu[0][r] - cpu[1][r])
    );
    println!(
        "  audit line in context (io+exchange+audit - io+exchange): {:.1} µs",
        median(&|r| cpu[3][r] - cpu[2][r])
    );
    println!(
        "  share of the in-process rate kept: {:.0} % without the audit line, {:.0} % with it",
        100.0 * median(&|r| cpu[1][r] / cpu[2][r]),
        100.0 * median(&|r| cpu[1][r] / cpu[3][r])
    );
}
