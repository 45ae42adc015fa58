//! The metrics endpoint, shared by chanced and chance-director: `GET /metrics` over HTTP
//! (tiny_http, one thread), OpenMetrics text from prometheus-client with the daemon's own
//! collector, which reads its counters at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A health endpoint's answer for a path (`/healthz...`): the HTTP status and a one-line body, or
/// `None` when the path is not one of the daemon's health endpoints.
pub(crate) type HealthAnswer = Box<dyn Fn(&str) -> Option<(u16, String)> + Send>;

/// OpenMetrics text, which Prometheus asks for and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A served metrics endpoint.
pub(crate) struct MetricsServer {
    server: Arc<tiny_http::Server>,
    address: SocketAddr,
    thread: JoinHandle<()>,
}

impl fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `address` and serves it on a thread of its own.
    pub(crate) fn serve(
        address: SocketAddr,
        program: &'static str,
        collector: Box<dyn Collector>,
        health: HealthAnswer,
    ) -> Result<Self, String> {
        let server = tiny_http::Server::http(address).map_err(|e| format!("{address}: {e}"))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("{address}: not an IP listener"))?;
        let server = Arc::new(server);
        let mut registry = Registry::default();
        registry.register_collector(collector);
        let thread = {
            let server = Arc::clone(&server);
            std::thread::Builder::new()
                .name("chance-metrics".into())
                .spawn(move || serve(&server, &registry, program, &health))
                .map_err(|e| format!("metrics thread: {e}"))?
        };
        tracing::info!(%address, "metrics served at http://{address}/metrics");
        Ok(Self {
            server,
            address,
            thread,
        })
    }

    /// Where it listens (port 0 resolved).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving and closes the listener.
    pub(crate) fn stop(self) {
        self.server.unblock();
        let _ = self.thread.join();
    }
}

fn serve(server: &tiny_http::Server, registry: &Registry, program: &str, health: &HealthAnswer) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let answer = match request.method() {
            tiny_http::Method::Get => health(path),
            _ => None,
        };
        if let Some((status, body)) = answer {
            let response = tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header("text/plain; charset=utf-8"));
            let _ = request.respond(response);
            continue;
        }
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, registry) {
                    Ok(()) => {
                        tiny_http::Response::from_string(body).with_header(header(CONTENT_TYPE))
                    }
                    Err(_) => {
                        tiny_http::Response::from_string("encoding failed\n").with_status_code(500)
                    }
                }
            }
            (tiny_http::Method::Get, "/") => tiny_http::Response::from_string(format!(
                "{program}: metrics at /metrics, health at /healthz/live and /healthz/ready\n"
            ))
            .with_header(header("text/plain; charset=utf-8")),
            _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
        };
        let _ = request.respond(response);
    }
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .unwrap_or_else(|()| "Content-Type: text/plain".parse().expect("a valid header"))
}

/// A sample's labels.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// One family: its name (without `_total`), help, type, and samples.
pub(crate) struct Family {
    pub(crate) name: String,
    help: String,
    kind: MetricType,
    pub(crate) samples: Vec<(Labels, f64)>,
}

impl Family {
    pub(crate) fn new(name: &str, help: &str, kind: MetricType) -> Self {
        Self {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            samples: Vec::new(),
        }
    }

    pub(crate) fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut metric = encoder.encode_descriptor(&self.name, &self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            let family = metric.encode_family(labels)?;
            match self.kind {
                // Counters are integers here; f64 holds them exactly below 2^53.
                MetricType::Counter => ConstCounter::new(*value as u64).encode(family)?,
                _ => ConstGauge::new(*value).encode(family)?,
            }
        }
        Ok(())
    }
}

/// Families in the order their first sample came.
#[derive(Default)]
pub(crate) struct Families(pub Vec<Family>);

impl Families {
    /// Adds a sample to the family `name`, made on first use.
    pub(crate) fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: Labels,
        value: f64,
    ) {
        match self.0.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push((labels, value)),
            None => {
                let mut f = Family::new(name, help, kind);
                f.samples.push((labels, value));
                self.0.push(f);
            }
        }
    }

    /// Encodes every family.
    pub(crate) fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        self.0.iter().try_for_each(|f| f.encode(encoder))
    }
}

/// `chance_build_info`'s labels: the program's version, git revision, DPDK release and linkage.
pub(crate) fn build_info_labels() -> Labels {
    vec![
        ("version", crate::daemon::VERSION.to_owned()),
        ("git_revision", crate::daemon::GIT_REVISION.to_owned()),
        ("dpdk", chance_runtime::dpdk_version()),
        (
            "dpdk_linkage",
            if chance_runtime::DPDK_STATIC {
                "static"
            } else {
                "shared"
            }
            .to_owned(),
        ),
    ]
}
