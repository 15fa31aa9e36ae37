//! The Helm chart's own tests: render it with chosen values and assert on the objects. The
//! schema-level checks (kubernetes-validate, helm lint) run in `deploy/dev/deploy-checks.sh`;
//! `chart_run.rs` starts what the chart renders.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;
use shadowsync_common::config::KEYS;
use shadowsync_system_tests::chart::{
    self, Rendered, at, list, render, string_map, text, try_render,
};

const SERVICES: [&str; 4] = ["task", "approval", "analysis", "executor"];

/// Configuration keys whose values are secrets: they may only come from a Secret.
const SECRET_VARIABLES: [&str; 5] = [
    "SHADOWSYNC_DATABASE_URL",
    "SHADOWSYNC_QUEUE_URL",
    "SHADOWSYNC_ENCRYPTION_KEY",
    "SHADOWSYNC_AUTH_SERVICE_TOKEN",
    "SHADOWSYNC_AUTH_HS256_SECRET",
];

fn production() -> Rendered {
    let values = chart::chart_dir().join("ci/production-values.yaml");
    render(&["-f", values.to_str().expect("UTF-8 path")])
}

fn name(service: &str) -> String {
    format!("{}-{service}", chart::RELEASE)
}

fn containers(spec: &Value) -> Vec<&Value> {
    list(&spec["containers"])
        .iter()
        .chain(list(&spec["initContainers"]))
        .collect()
}

/// Every `env` entry of every container, with its pod's name.
fn env_entries(rendered: &Rendered) -> Vec<(String, &Value)> {
    let mut entries = Vec::new();
    for (pod, spec) in rendered.pod_specs() {
        for container in containers(spec) {
            for entry in list(&container["env"]) {
                entries.push((pod.clone(), entry));
            }
        }
    }
    entries
}

#[test]
fn secrets_are_only_ever_referenced() {
    for rendered in [render(&[]), production()] {
        assert!(
            rendered.of_kind("Secret").is_empty(),
            "the chart creates no Secret: it references existing ones"
        );
        for config_map in rendered.of_kind("ConfigMap") {
            let data = string_map(&config_map["data"]);
            for secret in SECRET_VARIABLES {
                assert!(
                    !data.contains_key(secret),
                    "{secret} in ConfigMap {}",
                    text(config_map, &["metadata", "name"])
                );
            }
            for value in data.values() {
                assert!(
                    !value.contains("://") || !value.contains('@'),
                    "a URL with credentials in a ConfigMap: {value}"
                );
            }
        }
        let mut referenced = BTreeSet::new();
        for (pod, entry) in env_entries(&rendered) {
            let variable = text(entry, &["name"]);
            if SECRET_VARIABLES.contains(&variable) {
                assert!(entry.get("value").is_none(), "{pod}: {variable} inlined");
                assert!(
                    !text(entry, &["valueFrom", "secretKeyRef", "name"]).is_empty(),
                    "{pod}: {variable} not from a Secret"
                );
                referenced.insert(variable.to_string());
            }
        }
        assert_eq!(
            referenced,
            SECRET_VARIABLES[..4]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            "the services get their URLs, key and tokens from Secrets, and no shared HS256 secret"
        );
    }
}

#[test]
fn a_secret_cannot_be_smuggled_into_the_config_maps() {
    for variable in SECRET_VARIABLES {
        let flag = format!("config.extraEnv.{variable}=postgres://user:password@db/shadowsync");
        let error = try_render(&["--set", &flag]).expect_err("refused");
        assert!(
            error.contains(&format!("invalid propertyName '{variable}'")),
            "{error}"
        );
    }
    // Other keys pass.
    let rendered = render(&["--set", "config.extraEnv.SHADOWSYNC_LOG_FILTER=debug"]);
    assert_eq!(
        rendered.config_map(&name("task"))["SHADOWSYNC_LOG_FILTER"],
        "debug"
    );
}

#[test]
fn each_service_gets_only_its_own_secrets() {
    let rendered = render(&[]);
    let secret_env = |pod: &str| -> BTreeMap<String, String> {
        env_entries(&rendered)
            .into_iter()
            .filter(|(p, _)| p == pod)
            .map(|(_, e)| {
                (
                    text(e, &["name"]).to_string(),
                    text(e, &["valueFrom", "secretKeyRef", "key"]).to_string(),
                )
            })
            .collect()
    };
    let keys = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        secret_env(&name("task")),
        keys(&[
            ("SHADOWSYNC_DATABASE_URL", "database-url"),
            ("SHADOWSYNC_QUEUE_URL", "amqp-url"),
            ("SHADOWSYNC_ENCRYPTION_KEY", "encryption.key"),
            ("SHADOWSYNC_AUTH_SERVICE_TOKEN", "svc-task.token"),
        ])
    );
    assert_eq!(
        secret_env(&name("approval")),
        keys(&[
            ("SHADOWSYNC_DATABASE_URL", "database-url"),
            ("SHADOWSYNC_QUEUE_URL", "amqp-url"),
        ])
    );
    assert_eq!(secret_env(&name("analysis")), BTreeMap::new());
    assert_eq!(
        secret_env(&name("executor")),
        keys(&[
            ("SHADOWSYNC_QUEUE_URL", "amqp-url"),
            ("SHADOWSYNC_AUTH_SERVICE_TOKEN", "svc-executor.token"),
        ])
    );
    // The key set is mounted alone: never the signing key or another service's token.
    for service in SERVICES {
        let spec = at(
            rendered.get("Deployment", &name(service)),
            &["spec", "template", "spec"],
        );
        let jwks = list(&spec["volumes"])
            .iter()
            .find(|v| text(v, &["name"]) == "jwks")
            .expect("jwks volume");
        let items: Vec<&str> = list(&jwks["secret"]["items"])
            .iter()
            .map(|i| text(i, &["key"]))
            .collect();
        assert_eq!(items, ["jwks.json"], "{service}");
    }
}

#[test]
fn every_variable_the_chart_sets_is_a_configuration_key() {
    let known: BTreeSet<String> = KEYS.iter().map(|k| k.env_var()).collect();
    // Read by the PostgreSQL driver and the OpenTelemetry settings, not by shadowsync's keys.
    let driver = [
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    ];
    for rendered in [render(&[]), production()] {
        let mut names: Vec<(String, String)> = Vec::new();
        for config_map in rendered.of_kind("ConfigMap") {
            for key in string_map(&config_map["data"]).keys() {
                names.push((
                    text(config_map, &["metadata", "name"]).to_string(),
                    key.clone(),
                ));
            }
        }
        for (pod, entry) in env_entries(&rendered) {
            names.push((pod, text(entry, &["name"]).to_string()));
        }
        for (owner, variable) in names {
            if owner.ends_with("-runbook") || owner.ends_with("-dashboard") {
                continue;
            }
            assert!(
                known.contains(&variable) || driver.contains(&variable.as_str()),
                "{owner}: {variable} is no configuration key (a typo would be silently ignored)"
            );
        }
    }
}

#[test]
fn probes_ask_grpc_health_and_liveness_is_separate() {
    let rendered = render(&[]);
    for service in SERVICES {
        let deployment = rendered.get("Deployment", &name(service));
        let container = &list(at(deployment, &["spec", "template", "spec", "containers"]))[0];
        let health_port = container["readinessProbe"]["grpc"]["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("{service}: readiness is not a gRPC probe"));
        assert_eq!(
            container["startupProbe"]["grpc"]["port"].as_u64(),
            Some(health_port)
        );
        assert!(container["livenessProbe"]["grpc"].is_null(), "{service}");
        assert!(
            !container["livenessProbe"]["tcpSocket"].is_null(),
            "{service}"
        );
        let config = rendered.config_map(&name(service));
        assert_eq!(
            config["SHADOWSYNC_HEALTH_LISTEN"],
            format!("0.0.0.0:{health_port}"),
            "{service}: the probe's port is where health is served"
        );
        let ports: Vec<u64> = list(&container["ports"])
            .iter()
            .filter_map(|p| p["containerPort"].as_u64())
            .collect();
        assert!(ports.contains(&health_port), "{service}");
    }
    let tcp = render(&["--set", "probes.type=tcp"]);
    let deployment = tcp.get("Deployment", &name("task"));
    let container = &list(at(deployment, &["spec", "template", "spec", "containers"]))[0];
    assert_eq!(
        text(container, &["readinessProbe", "tcpSocket", "port"]),
        "grpc"
    );
}

#[test]
fn only_the_executor_autoscales_and_it_outlives_its_grace() {
    let rendered = render(&[]);
    let autoscalers = rendered.of_kind("HorizontalPodAutoscaler");
    assert_eq!(autoscalers.len(), 1);
    assert_eq!(
        text(autoscalers[0], &["spec", "scaleTargetRef", "name"]),
        name("executor")
    );
    for service in SERVICES {
        let replicas = &rendered.get("Deployment", &name(service))["spec"]["replicas"];
        // The autoscaler owns the executor's replica count; the chart must not fight it.
        assert_eq!(replicas.is_null(), service == "executor", "{service}");
    }
    for grace in ["20", "300"] {
        let rendered = render(&["--set", &format!("executor.shutdownGraceSeconds={grace}")]);
        let deployment = rendered.get("Deployment", &name("executor"));
        let termination = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("set");
        let configured: u64 =
            rendered.config_map(&name("executor"))["SHADOWSYNC_EXECUTOR_SHUTDOWN_GRACE_SECONDS"]
                .parse()
                .expect("number");
        assert_eq!(configured.to_string(), grace);
        assert!(termination > configured, "{termination} <= {configured}");
    }
    let external = production();
    let metrics = list(at(
        external.of_kind("HorizontalPodAutoscaler")[0],
        &["spec", "metrics"],
    ));
    let types: Vec<&str> = metrics.iter().map(|m| text(m, &["type"])).collect();
    assert_eq!(types, ["Resource", "External"]);
    let off = render(&["--set", "executor.autoscaling.enabled=false"]);
    assert!(off.of_kind("HorizontalPodAutoscaler").is_empty());
    assert_eq!(
        off.get("Deployment", &name("executor"))["spec"]["replicas"].as_u64(),
        Some(2)
    );
}

/// Component labels a NetworkPolicy peer selects inside the release.
fn peer_components(peers: &[Value]) -> BTreeSet<String> {
    peers
        .iter()
        .filter_map(|p| p["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str())
        .map(str::to_string)
        .collect()
}

#[test]
fn network_policy_allows_exactly_the_designed_arrows() {
    assert!(render(&[]).of_kind("NetworkPolicy").is_empty(), "opt-in");
    let rendered = production();
    let grpc = 50051;
    let mut calls = BTreeSet::new();
    let mut accepts = BTreeSet::new();
    let mut stores = BTreeSet::new();
    for policy in rendered.of_kind("NetworkPolicy") {
        let component = text(
            policy,
            &[
                "spec",
                "podSelector",
                "matchLabels",
                "app.kubernetes.io/component",
            ],
        )
        .to_string();
        let types: Vec<&str> = list(&policy["spec"]["policyTypes"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(types, ["Ingress", "Egress"], "{component}");
        for rule in list(&policy["spec"]["egress"]) {
            let ports: Vec<u64> = list(&rule["ports"])
                .iter()
                .filter_map(|p| p["port"].as_u64())
                .collect();
            for peer in peer_components(list(&rule["to"])) {
                assert_eq!(ports, [grpc], "{component} -> {peer}");
                calls.insert(format!("{component}->{peer}"));
            }
            for port in ports {
                let store = match port {
                    5432 => "postgres",
                    5671 => "rabbitmq",
                    3306 | 2881 => "target",
                    53 | 4317 | 50051 => continue,
                    other => panic!("{component}: unexpected egress port {other}"),
                };
                stores.insert(format!("{component}->{store}"));
            }
        }
        for rule in list(&policy["spec"]["ingress"]) {
            for peer in peer_components(list(&rule["from"])) {
                accepts.insert(format!("{peer}->{component}"));
            }
        }
    }
    let set =
        |arrows: &[&str]| -> BTreeSet<String> { arrows.iter().map(|a| a.to_string()).collect() };
    assert_eq!(
        calls,
        set(&["executor->task", "task->analysis", "task->approval"]),
        "gRPC egress inside the release"
    );
    assert_eq!(
        accepts,
        set(&[
            "executor->task",
            "task->analysis",
            "task->approval",
            "test->task"
        ]),
        "gRPC ingress inside the release"
    );
    assert_eq!(
        stores,
        set(&[
            "analysis->target",
            "approval->postgres",
            "approval->rabbitmq",
            "executor->rabbitmq",
            "executor->target",
            "migrate->postgres",
            "task->postgres",
            "task->rabbitmq",
        ])
    );
    // Without a destination for the stores, the policy would cut the services off: refused.
    let error = try_render(&["--set", "networkPolicy.enabled=true"]).expect_err("refused");
    assert!(
        error.contains("networkPolicy.postgres needs cidrs or peers"),
        "{error}"
    );
}

#[test]
fn grpc_tls_is_on_by_default() {
    let rendered = render(&[]);
    for service in SERVICES {
        let config = rendered.config_map(&name(service));
        assert_eq!(config["SHADOWSYNC_TLS_CERT"], "/etc/shadowsync/tls/tls.crt");
        assert_eq!(config["SHADOWSYNC_TLS_KEY"], "/etc/shadowsync/tls/tls.key");
        assert_eq!(
            config["SHADOWSYNC_TLS_PEER_CA"],
            "/etc/shadowsync/tls/ca.crt"
        );
        for (key, value) in &config {
            if key.starts_with("SHADOWSYNC_ENDPOINTS_") {
                assert!(value.starts_with("https://"), "{service}: {key}={value}");
            }
        }
        let spec = at(
            rendered.get("Deployment", &name(service)),
            &["spec", "template", "spec"],
        );
        let tls = list(&spec["volumes"])
            .iter()
            .find(|v| text(v, &["name"]) == "tls")
            .expect("TLS volume");
        assert_eq!(text(tls, &["secret", "secretName"]), "shadowsync-tls");
    }
    let off = render(&["--set", "tls.enabled=false"]);
    let config = off.config_map(&name("task"));
    assert!(!config.contains_key("SHADOWSYNC_TLS_CERT"));
    assert!(config["SHADOWSYNC_ENDPOINTS_ANALYSIS"].starts_with("http://"));
}

#[test]
fn the_values_schema_rejects_a_misspelt_key() {
    for (flag, misspelt) in [
        ("executor.tablePrallelism=4", "tablePrallelism"),
        ("tls.enabeld=false", "enabeld"),
        ("networkPolicy.enable=true", "enable"),
        ("imagee.tag=1", "imagee"),
    ] {
        let error = try_render(&["--set", flag]).expect_err("refused");
        assert!(
            error.contains(&format!("additional properties '{misspelt}' not allowed")),
            "{flag}: {error}"
        );
    }
    // Out-of-range values too.
    let error = try_render(&["--set", "executor.tableParallelism=17"]).expect_err("refused");
    assert!(error.contains("tableParallelism"), "{error}");
}

#[test]
fn pods_are_hardened() {
    for rendered in [render(&[]), production()] {
        let specs = rendered.pod_specs();
        assert_eq!(
            specs.len(),
            6,
            "four services, the migration Job and the test pod"
        );
        for (pod, spec) in specs {
            assert_eq!(
                spec["securityContext"]["runAsNonRoot"].as_bool(),
                Some(true),
                "{pod}"
            );
            assert_eq!(
                text(spec, &["securityContext", "seccompProfile", "type"]),
                "RuntimeDefault",
                "{pod}"
            );
            assert_eq!(
                spec["automountServiceAccountToken"].as_bool(),
                Some(false),
                "{pod}"
            );
            for container in containers(spec) {
                let context = &container["securityContext"];
                assert_eq!(
                    context["readOnlyRootFilesystem"].as_bool(),
                    Some(true),
                    "{pod}"
                );
                assert_eq!(
                    context["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{pod}"
                );
                let dropped: Vec<&str> = list(&context["capabilities"]["drop"])
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(dropped, ["ALL"], "{pod}");
                assert!(!container["resources"]["requests"].is_null(), "{pod}");
                assert!(
                    !container["resources"]["limits"]["memory"].is_null(),
                    "{pod}"
                );
            }
        }
        for account in rendered.of_kind("ServiceAccount") {
            assert_eq!(
                account["automountServiceAccountToken"].as_bool(),
                Some(false)
            );
        }
    }
}

#[test]
fn a_configuration_change_rolls_the_pods() {
    let checksum = |rendered: &Rendered| {
        text(
            rendered.get("Deployment", &name("task")),
            &[
                "spec",
                "template",
                "metadata",
                "annotations",
                "checksum/config",
            ],
        )
        .to_string()
    };
    let before = checksum(&render(&[]));
    assert_eq!(before.len(), 64);
    assert_eq!(before, checksum(&render(&[])), "stable across renders");
    assert_ne!(
        before,
        checksum(&render(&["--set", "config.logFilter=debug"]))
    );
}

#[test]
fn migrations_run_as_a_hook_or_a_plain_job_and_the_services_never_migrate() {
    let rendered = render(&[]);
    let job = rendered.get("Job", &name("migrate"));
    assert_eq!(
        text(job, &["metadata", "annotations", "helm.sh/hook"]),
        "pre-install,pre-upgrade"
    );
    let container = &list(at(job, &["spec", "template", "spec", "containers"]))[0];
    let args: Vec<&str> = list(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args[0], "migrate");
    for service in ["task", "approval"] {
        assert_eq!(
            rendered.config_map(&name(service))["SHADOWSYNC_DATABASE_AUTO_MIGRATE"],
            "false"
        );
    }
    let gitops = render(&["--set", "migrations.useHooks=false"]);
    let job = gitops.get("Job", &format!("{}-1", name("migrate")));
    assert!(at(job, &["metadata", "annotations"]).is_null());
}

#[test]
fn the_image_is_pinned_by_tag_or_digest() {
    let image = |rendered: &Rendered| {
        let deployment = rendered.get("Deployment", &name("task"));
        text(
            &list(at(deployment, &["spec", "template", "spec", "containers"]))[0],
            &["image"],
        )
        .to_string()
    };
    assert_eq!(image(&render(&[])), "shadowsync:0.1.0");
    assert_eq!(
        image(&render(&["--set", "image.tag=0.1.1"])),
        "shadowsync:0.1.1"
    );
    assert!(
        image(&production())
            .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    assert!(try_render(&["--set", "image.digest=latest"]).is_err());
}

#[test]
fn metrics_are_served_and_the_operator_material_ships_on_request() {
    let rendered = render(&[]);
    for service in SERVICES {
        let listen = &rendered.config_map(&name(service))["SHADOWSYNC_METRICS_LISTEN"];
        let port: u64 = listen
            .rsplit(':')
            .next()
            .expect("port")
            .parse()
            .expect("number");
        let object = rendered.get("Service", &name(service));
        let metrics = list(&object["spec"]["ports"])
            .iter()
            .find(|p| text(p, &["name"]) == "metrics")
            .unwrap_or_else(|| panic!("{service}: no metrics port on its Service"));
        assert_eq!(metrics["port"].as_u64(), Some(port), "{service}");
    }
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(rendered.of_kind(kind).is_empty(), "{kind} is opt-in");
    }
    assert!(rendered.find("ConfigMap", &name("dashboard")).is_none());

    let on = production();
    let monitor = on.of_kind("ServiceMonitor")[0];
    assert_eq!(
        text(&list(&monitor["spec"]["endpoints"])[0], &["port"]),
        "metrics"
    );
    let rules = on.of_kind("PrometheusRule")[0];
    let shipped: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            chart::repository().join("deploy/observability/prometheus-rules.yaml"),
        )
        .expect("rules file"),
    )
    .expect("rules YAML");
    assert_eq!(
        rules["spec"]["groups"], shipped["groups"],
        "the rules as shipped"
    );
    let dashboard = on.get("ConfigMap", &name("dashboard"));
    assert_eq!(
        text(dashboard, &["metadata", "labels", "grafana_dashboard"]),
        "1"
    );
    let json = text(dashboard, &["data", "shadowsync.json"]);
    assert_eq!(
        json.trim(),
        std::fs::read_to_string(
            chart::repository().join("deploy/observability/grafana-dashboard.json")
        )
        .expect("dashboard file")
        .trim()
    );
}
