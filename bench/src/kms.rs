//! The KMS signers under the same load, against the AWS emulator: the per-token `kms` signer
//! (the emulator's speed, not KMS's, and claimex's own CPU time per exchange with a remote
//! signer), the `kms-envelope` signer (one Decrypt at start, local signing), and the local
//! signer in the same conditions as the baseline.

use std::fmt::Write as _;

use aws_sdk_kms::types::KeySpec;
use aws_sdk_ssm::types::ParameterType;
use claimex::signer::SigningAlg;
use claimex_testkit::moto::{self, Moto};

use crate::load::{LoadSample, load_sample};
use crate::report::{Report, setting};
use crate::{Bench, CLIENT_CPU, Signer};

/// The KMS section of the report.
pub fn run(bench: &mut Bench, out: &mut Report) {
    let secs = setting("BENCH_LOAD_SECS", 10);
    let connections = setting("BENCH_LOAD_CONNECTIONS", 16);
    let _ = writeln!(
        out,
        "\nKMS signer against the AWS emulator (moto_server via tests/support/moto_launcher.py, on CPU {CLIENT_CPU} \
         beside wrk): one {secs} s run each; EMULATOR TIME, not KMS's speed"
    );
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| moto::python());
    let cpus = bench.pin.then_some(CLIENT_CPU);
    let moto = match Moto::start_with(&python, claimex_testkit::free_port(), cpus) {
        Ok(moto) => moto,
        Err(e) => {
            let _ = writeln!(out, "  skipped: {e}");
            return;
        }
    };
    let moto_pid = moto.pid();
    let kms = moto::kms(&moto.url());
    let _ = writeln!(
        out,
        "  {:<24} {:>8} {:>7} {:>7} {:>8} {:>6} {:>13} {:>12} {:>9} {:>8}",
        "run",
        "exch/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "CPU µs/exch",
        "claimex CPU",
        "moto CPU",
        "wrk CPU"
    );
    for (label, spec) in [
        ("ES256 (KMS ECC_NIST_P256)", KeySpec::EccNistP256),
        ("RS256 (KMS RSA_2048)", KeySpec::Rsa2048),
    ] {
        let arn = bench.rt.block_on(moto::create_key(&kms, spec));
        let signer = Signer::Kms {
            arn,
            endpoint: moto.url(),
        };
        let s = load_sample(bench, &signer, &[], secs, connections, moto_pid, false);
        row(out, label, &s);
    }
    // The envelope signer and the local one, in the same run and conditions.
    let ssm = moto::ssm(&moto.url());
    let master = bench.rt.block_on(async {
        kms.create_key()
            .description("claimex bench envelope key")
            .send()
            .await
            .expect("KMS CreateKey")
            .key_metadata()
            .and_then(|m| m.arn())
            .expect("a key ARN")
            .to_owned()
    });
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let key = format!("/bench/envelope/{}", alg.as_str());
        let parameter = format!("/bench/keys/{}", alg.as_str());
        bench.rt.block_on(async {
            claimex::signer::envelope::create(&kms, &ssm, &key, &master, alg)
                .await
                .expect("claimex keys create-envelope");
            moto::put_parameter(
                &ssm,
                &parameter,
                &serde_json::json!({ "current": key }).to_string(),
                ParameterType::String,
            )
            .await;
        });
        for (label, signer) in [
            (
                format!("{} kms-envelope", alg.as_str()),
                Signer::Envelope {
                    parameter: parameter.clone(),
                    endpoint: moto.url(),
                },
            ),
            (format!("{} local", alg.as_str()), Signer::Local(alg)),
        ] {
            let s = load_sample(bench, &signer, &[], secs, connections, moto_pid, false);
            row(out, &label, &s);
        }
    }
    let _ = writeln!(
        out,
        "  claimex still verifies, maps and builds the token; each Sign is one SigV4-signed plain-HTTP call to the \
         emulator (no TLS), whose signature claimex verifies before issuing; CPU µs/exch is claimex's own CPU"
    );
}

/// One row of the signer table.
fn row(out: &mut Report, label: &str, s: &LoadSample) {
    let _ = writeln!(
        out,
        "  {:<24} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>6} {:>13.1} {:>11.0}% {:>8.0}% {:>7.0}%",
        label,
        s.rate,
        s.p50_ms,
        s.p99_ms,
        s.p999_ms,
        s.errors,
        s.cpu_us_per_exchange,
        100.0 * s.claimex_cpu,
        100.0 * s.peer_cpu,
        100.0 * s.wrk_cpu,
    );
}
