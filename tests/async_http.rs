//! Async in the protocols crate: HTTP `Async` handlers answered in pipeline order, and
//! `get_page(...).await` / `request(...).await` from a task.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::{client, wait_deferred, Server};
use torsion::protocols::http::client::{get_page, request, ClientOptions};
use torsion::protocols::http::{Async, Dir, Handler, HttpServer, Response, ServerConfig};
use torsion::reactor::task::with_ctx;
use torsion::reactor::{aio, Reactor};

fn serve() -> Server {
    Server::start(|r| {
        let mut root = Dir::new();
        root.set_index(Handler::get(|_| Response::text(200, "index\n")));
        root.put_child(
            "slow",
            Async::get(|_req| async {
                aio::sleep(Duration::from_millis(30)).await;
                Response::text(200, "slow\n")
            }),
        );
        root.put_child(
            "fast",
            Async::get(|req| {
                let n = req.path.len();
                async move { Response::text(200, format!("fast {n}\n")) }
            }),
        );
        root.put_child(
            "panics",
            Async::get(|_req| async {
                torsion::reactor::task::yield_now().await;
                panic!("handler bug");
            }),
        );
        r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default())).unwrap().addr
    })
}

fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = client(addr);
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn async_handlers_are_answered_in_pipeline_order() {
    let server = serve();
    let out = exchange(
        server.addr,
        b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\nGET /panics HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let slow = out.find("slow\n").expect(&out);
    let fast = out.find("fast 1\n").expect(&out);
    let failed = out.find("HTTP/1.1 500").expect(&out);
    let index = out.find("index\n").expect(&out);
    assert!(slow < fast && fast < failed && failed < index, "out of order:\n{out}");
}

#[test]
fn get_page_and_request_can_be_awaited_in_a_task() {
    let server = serve();
    let base = format!("http://{}", server.addr);
    let mut r = Reactor::new().unwrap();
    let d = r.ctx().spawn(async move {
        let page = with_ctx({
            let url = format!("{base}/fast");
            move |ctx| get_page(ctx, &url)
        })
        .await
        .unwrap()
        .await
        .expect("get_page");
        let posted = with_ctx({
            let url = format!("{base}/slow");
            move |ctx| request(ctx, "GET", &url, &[], Vec::new(), &ClientOptions::default())
        })
        .await
        .unwrap()
        .await
        .expect("request");
        (page.status, page.body, posted.status, posted.body)
    });
    let (s1, b1, s2, b2) = wait_deferred(&mut r, d).unwrap();
    assert_eq!((s1, b1.as_slice()), (200, &b"fast 1\n"[..]));
    assert_eq!((s2, b2.as_slice()), (200, &b"slow\n"[..]));
}
