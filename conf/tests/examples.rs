//! Every example parses and validates, and every config field appears in the documented
//! example `shardgate.toml` (field names read from serde, so a new field cannot go undocumented).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

use conf::introspect::field_names;
use conf::model::{FileModel, ForwardingConf, RouteConf, ServerConf, UpstreamConf};
use conf::route_traffic::{MirrorConf, RouteTimeouts, SplitConf, WhenConf};
use conf::tls::{CertConf, ListenerConf, TlsConf, UpstreamTlsConf};
use conf::traffic::{BreakerConf, HealthConf, OutlierConf, RetryConf};

fn examples() -> Vec<std::path::PathBuf> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_validates() {
    let list = examples();
    assert!(list.len() >= 2);
    for p in list {
        if let Err(e) = conf::load(&p) {
            panic!("{e}");
        }
    }
    conf::load_str(conf::DEFAULT_NAME, conf::DEFAULT).unwrap();
}

#[test]
fn every_field_is_documented_in_shardgate_toml() {
    let text = include_str!("../examples/shardgate.toml");
    let all = [
        field_names::<FileModel>(),
        field_names::<ServerConf>(),
        field_names::<ForwardingConf>(),
        field_names::<UpstreamConf>(),
        field_names::<RouteConf>(),
        field_names::<ListenerConf>(),
        field_names::<TlsConf>(),
        field_names::<CertConf>(),
        field_names::<UpstreamTlsConf>(),
        field_names::<HealthConf>(),
        field_names::<OutlierConf>(),
        field_names::<RetryConf>(),
        field_names::<BreakerConf>(),
        field_names::<RouteTimeouts>(),
        field_names::<SplitConf>(),
        field_names::<WhenConf>(),
        field_names::<MirrorConf>(),
        field_names::<conf::discovery::DiscoveryConf>(),
        field_names::<conf::admin::AdminConf>(),
        field_names::<conf::observe::RequestIdConf>(),
        field_names::<conf::observe::TracingConf>(),
        field_names::<conf::observe::AccessLogConf>(),
        field_names::<conf::aggregate::AggregateConf>(),
        field_names::<conf::aggregate::CallConf>(),
        field_names::<conf::redis::RedisConf>(),
        field_names::<conf::management::ManagementConf>(),
    ];
    for fields in all {
        assert!(!fields.is_empty());
        for f in fields {
            let set = format!("\n{f} = ");
            // a field that cannot be set beside the others shown is documented commented out
            let commented = format!("\n# {f} = ");
            let table = format!("[{f}]");
            let array = format!("[[{f}]]");
            let nested = format!(".{f}]");
            let inline = format!("{{ {f} = ");
            assert!(
                text.contains(&set)
                    || text.contains(&commented)
                    || text.contains(&inline)
                    || text.contains(&table)
                    || text.contains(&array)
                    || text.contains(&nested),
                "field `{f}` is not documented in conf/examples/shardgate.toml"
            );
        }
    }
}
