//! HTTP/1.1 server on one thread: a hello route, a JSON echo, and a static directory.
//!
//! Run:   cargo run --release --example http_server -- [--listen 127.0.0.1:8080] [--dir DIR]
//!        [--cert CERT.pem --key KEY.pem]                      (HTTPS instead of HTTP)
//! Poke:  curl http://127.0.0.1:8080/
//!        curl -d '{"a":1}' http://127.0.0.1:8080/echo
//!        curl http://127.0.0.1:8080/static/Cargo.toml       (files under DIR, default .)
//!        curl http://127.0.0.1:8080/later                    (answered from the thread pool)
//!        wrk -t1 -c100 -d10s http://127.0.0.1:8080/           (see benches/http_wrk.sh)
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use torsion::protocols::http::{
    Dir, Handler, HttpServer, Later, Response, ServerConfig, StaticDir,
};
use torsion::reactor::{Reactor, TlsServerConfig};

/// An HTTP/1.1 server: a hello page, an echo resource, and files under DIR.
#[derive(clap::Parser)]
#[command(name = "http_server")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory served as static files.
    #[arg(long, default_value = ".")]
    dir: String,
    /// Serve HTTPS with this PEM certificate chain (needs --key).
    #[arg(long, requires = "key")]
    cert: Option<String>,
    /// The certificate's PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Args { listen, dir, cert, key } = clap::Parser::parse();
    let tls = cert.zip(key);
    match serve(&listen, &dir, tls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    listen: &str,
    dir: &str,
    tls: Option<(String, String)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut root = Dir::new();
    root.set_index(Handler::get(|_| Response::text(200, "Hello, world!\n")));
    root.put_child(
        "echo",
        Handler::post(|req| {
            // The body back as JSON: as it is if it is JSON, else as a JSON string.
            let text = String::from_utf8_lossy(&req.body);
            let looks_json = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
            let body = if looks_json { text.into_owned() } else { format!("{text:?}") };
            Response::json(200, body)
        }),
    );
    root.put_child("static", StaticDir::new(dir)?);
    // A response that comes later: the work runs on the reactor's thread pool and the
    // Deferred it returns is the response.
    root.put_child(
        "later",
        Later::get(|_req, ctx| {
            ctx.defer_to_thread(|| (1..=20u64).product::<u64>())
                .map(ctx, |_ctx, n| Response::text(200, format!("20! = {n}\n")))
        }),
    );
    let mut reactor = Reactor::new()?;
    let server = HttpServer::new(root, ServerConfig::default());
    let (port, scheme) = match tls {
        Some((cert, key)) => {
            let config = TlsServerConfig::from_pem_files(cert, key)?.with_alpn(&["http/1.1"])?;
            (reactor.listen_tls(listen, server, config)?, "https")
        }
        None => (reactor.listen_tcp(listen, server)?, "http"),
    };
    log::info!("serving {scheme}://{}/ (static files from {dir} under /static/)", port.addr);
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
