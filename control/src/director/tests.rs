use super::*;
use crate::shell::api_server::ApiHandler;
use table::tests::RoundRobin;

fn round_robin(
    _: &DirectorConfig,
    tables: &[TableSpec],
) -> Result<Arc<dyn ForwardingTable>, String> {
    Ok(Arc::new(RoundRobin::of(&tables[0].backends)))
}

#[test]
fn a_health_change_rebuilds_the_table_that_backends_and_lookup_read() {
    let text = format!(
        "{}[[bind]]\nvip = \"203.0.113.10\"\nprotocol = \"tcp\"\nport = 443\n\
         [[backend]]\naddress = \"192.0.2.1\"\nstate = \"active\"\n\
         [[backend]]\naddress = \"192.0.2.2\"\nstate = \"active\"\n",
        crate::director_config::tests::MINIMAL
    );
    let config = director_config::parse(&text, "t").unwrap();
    let tables = table::source(&config).unwrap();
    let loaded = Arc::new(Loaded::new(config, tables));
    let shared = Arc::new(Shared::new(
        "t".into(),
        &loaded,
        Some(round_robin),
        false,
        LogControl::init("info"),
    ));
    shared.rebuild("start").unwrap();
    let handed = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&handed);
    shared.set_table_hook(Box::new(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    }));
    assert_eq!(
        handed.load(Ordering::Relaxed),
        1,
        "the table in force is handed at once"
    );
    let rebuilder = spawn_rebuilder(&shared).unwrap();
    let api = api::DirectorApi(Arc::clone(&shared));
    let rows = |reply: &serde_json::Value, i: usize| reply["backends"][i]["primary_rows"].clone();
    let before = api.handle(crate::api::Request::DirectorBackends).unwrap();
    assert_eq!(
        (rows(&before, 0), rows(&before, 1)),
        (32768.into(), 32768.into())
    );

    shared.health.record(
        "192.0.2.2".parse().unwrap(),
        &Err("down".into()),
        Some(false),
    );
    let start = Instant::now();
    while shared.table_builds.load(Ordering::Relaxed) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no rebuild after a health change"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = api.handle(crate::api::Request::DirectorBackends).unwrap();
    assert_eq!((rows(&after, 0), rows(&after, 1)), (65536.into(), 0.into()));
    assert_eq!(after["backends"][1]["healthy"], false);
    assert_eq!(
        handed.load(Ordering::Relaxed),
        2,
        "the rebuilt table is handed on"
    );
    let lookup = api
        .handle(crate::api::Request::DirectorLookup {
            proto: "tcp".into(),
            vip: "203.0.113.10:443".into(),
            client: "198.51.100.7:7".into(),
        })
        .unwrap();
    assert_eq!(lookup["row"], 7);
    assert_eq!(lookup["hops"][0], "192.0.2.1");
    shared.stop.store(true, Ordering::Relaxed);
    rebuilder.join().unwrap();
}
