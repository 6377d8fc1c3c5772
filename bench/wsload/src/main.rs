//! wsload: the WebSocket load client of `bench/run.sh` (target P1). It talks to a WebSocket echo
//! server (the fixture's `/ws`), directly or through a proxy, and prints one JSON object per result.
//!
//! ```text
//! wsload throughput URL COOKIE SECONDS SIZE WINDOW   one socket, SIZE-byte binary messages, up to
//!                                                    WINDOW in flight, for SECONDS after a 1 s warm-up
//! wsload rtt URL COOKIE COUNT SIZE                   COUNT sequential round trips of SIZE bytes
//! wsload idle URL COOKIE N CONCURRENCY               N sockets held open; driven by stdin lines:
//!                                                    "big" (one 64 KiB echo on each), "close"
//! wsload serve PORT                                  a fast upstream: HTTP/1.1 keep-alive with
//!                                                    `GET /api/health` (200 "ok") and a WebSocket
//!                                                    echo at `/ws`, on one thread
//! wsload proxy PORT UPSTREAM                         bare hyper: hyper's HTTP/1.1 server and client
//!                                                    passing plain requests to UPSTREAM (host:port)
//!                                                    and nothing else, one streamer connection per
//!                                                    client connection (as the session proxy keeps
//!                                                    them) driven in its task, on tokio's default runtime:
//!                                                    the floor of any proxy built on hyper's
//!                                                    server and client
//! ```
//!
//! COOKIE is sent as the `Cookie` header (`-` for none). Runs on one thread: pin it with taskset.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

const WARM_UP: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ECHO_TIMEOUT: Duration = Duration::from_secs(30);

async fn connect(url: &str, cookie: &str) -> Result<Socket, Error> {
    let mut request = url.into_client_request()?;
    if cookie != "-" {
        request.headers_mut().insert("cookie", cookie.parse()?);
    }
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
    let (socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, async {
        // Every session has its own host, `<id>.localhost`: on loopback, as browsers resolve it.
        let host = request.uri().host().unwrap_or_default();
        if host.ends_with(".localhost") {
            let port = request.uri().port_u16().unwrap_or(80);
            let stream = MaybeTlsStream::Plain(TcpStream::connect(("127.0.0.1", port)).await?);
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await
        } else {
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await
        }
    })
    .await??;
    Ok(socket)
}

/// Sends `payload` and waits for its echo (skipping pings and pongs).
async fn echo(socket: &mut Socket, payload: Message) -> Result<(), Error> {
    let len = payload.len();
    socket.send(payload).await?;
    loop {
        match tokio::time::timeout(ECHO_TIMEOUT, socket.next()).await? {
            Some(Ok(Message::Binary(data))) if data.len() == len => return Ok(()),
            Some(Ok(Message::Text(data))) if data.len() == len => return Ok(()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => return Err(format!("unexpected message of {} bytes", other.len()).into()),
            Some(Err(err)) => return Err(err.into()),
            None => return Err("the connection closed".into()),
        }
    }
}

fn payload(size: usize) -> Bytes {
    (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

async fn throughput(url: &str, cookie: &str, seconds: f64, size: usize, window: usize) -> Result<(), Error> {
    let socket = connect(url, cookie).await?;
    let (mut sink, mut source) = socket.split();
    let data = payload(size);
    let credits = Arc::new(Semaphore::new(window));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let sender = {
        let (credits, stop) = (credits.clone(), stop.clone());
        async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                credits.acquire().await?.forget();
                sink.send(Message::Binary(data.clone())).await?;
                sent += 1;
            }
            Ok::<_, Error>((sink, sent))
        }
    };
    let receiver = {
        let (credits, received, stop) = (credits.clone(), received.clone(), stop.clone());
        async move {
            let mut messages = 0u64;
            loop {
                let next = tokio::time::timeout(ECHO_TIMEOUT, source.next()).await?;
                match next {
                    Some(Ok(Message::Binary(data))) => {
                        received.fetch_add(data.len() as u64, Ordering::Relaxed);
                        messages += 1;
                        credits.add_permits(1);
                        // Stop once told to and every in-flight message is back.
                        if stop.load(Ordering::Relaxed) && credits.available_permits() >= window {
                            return Ok::<_, Error>((source, messages));
                        }
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => return Err(err.into()),
                    None => return Err("the connection closed".into()),
                }
            }
        }
    };
    let clock = {
        let (received, stop) = (received.clone(), stop.clone());
        async move {
            tokio::time::sleep(WARM_UP).await;
            let (t0, b0) = (Instant::now(), received.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            let (t1, b1) = (Instant::now(), received.load(Ordering::Relaxed));
            stop.store(true, Ordering::Relaxed);
            (b1 - b0, (t1 - t0).as_secs_f64())
        }
    };
    let (sent, got, (window_bytes, window_seconds)) = tokio::join!(sender, receiver, clock);
    let (sink, sent) = sent?;
    let (source, messages) = got?;
    let total_seconds = started.elapsed().as_secs_f64();
    if let Ok(mut socket) = sink.reunite(source) {
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    }
    println!(
        "{{\"sent\":{sent},\"messages\":{messages},\"total_bytes\":{},\"total_seconds\":{total_seconds:.4},\"window_bytes\":{window_bytes},\"window_seconds\":{window_seconds:.4},\"mb_per_s\":{:.2}}}",
        received.load(Ordering::Relaxed),
        window_bytes as f64 / 1e6 / window_seconds
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn rtt(url: &str, cookie: &str, count: usize, size: usize) -> Result<(), Error> {
    let mut socket = connect(url, cookie).await?;
    let data = payload(size);
    for _ in 0..count.min(200) {
        echo(&mut socket, Message::Binary(data.clone())).await?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        echo(&mut socket, Message::Binary(data.clone())).await?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    samples.sort_by(f64::total_cmp);
    println!(
        "{{\"count\":{count},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"mean_us\":{mean:.1}}}",
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

async fn idle(url: &str, cookie: &str, n: usize, concurrency: usize) -> Result<(), Error> {
    let small = payload(100);
    let started = Instant::now();
    let results: Vec<Result<Socket, Error>> = stream::iter(0..n)
        .map(|_| {
            let small = small.clone();
            async move {
                let mut socket = connect(url, cookie).await?;
                echo(&mut socket, Message::Binary(small)).await?;
                Ok(socket)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut first_error = None;
    let mut sockets = Vec::with_capacity(n);
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(err) => {
                first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    let report = |phase: &str, ok: usize, error: &Option<String>, seconds: f64| {
        let error = error.as_deref().unwrap_or("").replace('"', "'");
        println!(
            "{{\"phase\":\"{phase}\",\"ok\":{ok},\"failed\":{},\"seconds\":{seconds:.2},\"error\":\"{error}\"}}",
            n - ok
        );
    };
    report("open", sockets.len(), &first_error, started.elapsed().as_secs_f64());

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        match line.trim() {
            "big" => {
                let big = payload(64 * 1024);
                let started = Instant::now();
                let outcomes: Vec<Result<(), Error>> = stream::iter(sockets.iter_mut())
                    .map(|socket| echo(socket, Message::Binary(big.clone())))
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
                let error = outcomes.iter().find_map(|r| r.as_ref().err().map(|e| e.to_string()));
                let ok = outcomes.iter().filter(|r| r.is_ok()).count();
                report("big", ok, &error, started.elapsed().as_secs_f64());
            }
            "close" => break,
            _ => {}
        }
    }
    let started = Instant::now();
    let count = sockets.len();
    stream::iter(sockets)
        .for_each_concurrent(concurrency, |mut socket| async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
        })
        .await;
    report("closed", count, &None, started.elapsed().as_secs_f64());
    Ok(())
}

/// The echo server: enough HTTP/1.1 for health checks, small requests and WebSocket upgrades (also
/// on a connection that carried plain requests before, as proxies' keep-alive pools do).
async fn serve(port: u16) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    eprintln!("wsload echo server listening on 0.0.0.0:{port}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    // Peers that hang up mid-request are normal under load: nothing to report.
                    let _ = serve_connection(stream).await;
                });
            }
            _ = terminate.recv() => return Ok(()),
        }
    }
}

async fn serve_connection(mut stream: TcpStream) -> Result<(), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Read until a whole request head is buffered.
        let (head_len, method, path, content_length, upgrade_key) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(len) = request.parse(&buf)? {
                let header = |name: &str| {
                    request.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.to_vec())
                };
                let content_length = header("content-length")
                    .and_then(|v| String::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
                let key = if upgrade { header("sec-websocket-key") } else { None };
                break (
                    len,
                    request.method.unwrap_or("").to_owned(),
                    request.path.unwrap_or("").to_owned(),
                    content_length,
                    key,
                );
            }
            if buf.len() > 64 * 1024 {
                return Err("request head too large".into());
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let path = path.split('?').next().unwrap_or("").to_owned();
        if let (Some(key), "/ws") = (upgrade_key, path.as_str()) {
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            stream.write_all(response.as_bytes()).await?;
            let rest = buf.split_off(head_len);
            let config = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
            let mut socket = WebSocketStream::from_partially_read(
                stream,
                rest,
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                Some(config),
            )
            .await;
            while let Some(message) = socket.next().await {
                match message? {
                    message @ (Message::Binary(_) | Message::Text(_)) => socket.send(message).await?,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            return Ok(());
        }
        // Skip the request body, if any.
        let mut remaining = content_length;
        let buffered = buf.len() - head_len;
        let take = buffered.min(remaining);
        buf.drain(..head_len + take);
        remaining -= take;
        while remaining > 0 {
            let mut chunk = vec![0u8; remaining.min(64 * 1024)];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            remaining -= n;
        }
        let (status, body) = match (method.as_str(), path.as_str()) {
            ("GET" | "HEAD", "/api/health") => ("200 OK", "ok"),
            ("GET" | "HEAD", "/") => ("200 OK", "<!doctype html><title>wsload echo</title>"),
            _ => ("404 Not Found", "not found\n"),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nServer: wsload\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            if method == "HEAD" { "" } else { body }
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

/// Bare hyper (see the header): each client connection gets one streamer connection, and its
/// requests go there one after another.
async fn proxy(port: u16, upstream: String) -> Result<(), Error> {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (client, _) = listener.accept().await?;
        client.set_nodelay(true)?;
        let streamer = TcpStream::connect(&upstream).await?;
        streamer.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok((sender, connection)) = hyper::client::conn::http1::handshake(TokioIo::new(streamer)).await else {
                return;
            };
            let sender = Arc::new(tokio::sync::Mutex::new(sender));
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let sender = sender.clone();
                async move { sender.lock().await.send_request(request).await }
            });
            let server = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(client), service);
            let _ = tokio::join!(server, connection);
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<f64>().unwrap_or_else(|_| panic!("argument {i} must be a number"));
    if arg(1) == "proxy" {
        // The runtime the control plane runs on, so that only the work per request differs.
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        if let Err(err) = runtime.block_on(proxy(num(2) as u16, arg(3))) {
            eprintln!("wsload: {err}");
            std::process::exit(1);
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match arg(1).as_str() {
            "throughput" => throughput(&arg(2), &arg(3), num(4), num(5) as usize, num(6) as usize).await,
            "rtt" => rtt(&arg(2), &arg(3), num(4) as usize, num(5) as usize).await,
            "idle" => idle(&arg(2), &arg(3), num(4) as usize, num(5) as usize).await,
            "serve" => serve(num(2) as u16).await,
            _ => Err("usage: wsload throughput|rtt|idle URL COOKIE ... | serve PORT | proxy PORT UPSTREAM (see the source's header)".into()),
        }
    });
    if let Err(err) = result {
        eprintln!("wsload: {err}");
        std::process::exit(1);
    }
}
