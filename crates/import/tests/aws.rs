//! The AWS API Gateway importer over every file in the shared AWS fixtures (the counts and
//! findings a user expects from each) and over small documents and templates that reach the
//! mappings the fixtures do not.

use serde_json::{Value, json};
use tollgate_import::Imported;
use tollgate_import::aws::{Options, import};

const MOCK: &str = "http://127.0.0.1:9";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_upstream(upstream: &str) -> Options {
    Options {
        upstream: Some(upstream.to_string()),
        name: None,
    }
}

fn unsupported(out: &Imported) -> Vec<&str> {
    out.report
        .unsupported
        .iter()
        .map(|f| f.at.as_str())
        .collect()
}

fn notes(out: &Imported) -> Vec<String> {
    out.report.notes.iter().map(ToString::to_string).collect()
}

/// `(methods, path, name)` of each route of the first API's version `v`.
fn routes(doc: &Value, v: usize) -> Vec<(String, String, String)> {
    doc["apis"][0]["versions"][v]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["methods"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .unwrap_or_default(),
                r["path"].as_str().unwrap_or("").to_string(),
                r["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn route<'a>(doc: &'a Value, v: usize, path: &str, method: &str) -> &'a Value {
    doc["apis"][0]["versions"][v]["routes"]
        .as_array()
        .and_then(|r| {
            r.iter().find(|r| {
                r["path"] == path
                    && r["methods"]
                        .as_array()
                        .is_some_and(|m| m.contains(&json!(method)))
            })
        })
        .unwrap_or_else(|| panic!("no route {method} {path}"))
}

#[test]
fn the_localstack_export_maps_its_http_integrations_and_cors() {
    let out = import(
        &fixture("localstack-openapi.spec.json"),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(
        out.report.summary(),
        "1 upstream, 1 api, 1 version, 3 routes, 4 policies"
    );
    // The integrations' origin is the upstream; their paths are the routes' upstream paths.
    assert_eq!(
        out.document["upstreams"][0]["targets"][0]["url"],
        "http://petstore.execute-api.us-west-1.amazonaws.com"
    );
    assert_eq!(
        routes(&out.document, 0),
        [
            ("GET".into(), "=/pets".into(), "GET HTTP".into()),
            ("POST".into(), "=/pets".into(), "Create Pet".into()),
            ("GET".into(), "=/pets/{petId}".into(), "Get Pet".into()),
        ]
    );
    let transform = |path: &str, m: &str| route(&out.document, 0, path, m)["policies"].clone();
    assert_eq!(
        transform("=/pets", "GET"),
        json!([{ "request_transform": { "path": "/petstore/pets" } }])
    );
    // POST's integration is a `$ref` into components.x-amazon-apigateway-integrations.
    assert_eq!(
        transform("=/pets", "POST"),
        json!([{ "request_transform": { "path": "/petstore/pets" } }])
    );
    assert_eq!(
        transform("=/pets/{petId}", "GET"),
        json!([{ "request_transform": { "path": "/petstore/pets/{petId}" } }])
    );
    let version = &out.document["apis"][0]["versions"][0];
    assert_eq!(
        version["policies"],
        json!([{ "cors": {
            "origins": ["*"],
            "methods": ["GET", "OPTIONS", "POST"],
            "headers": ["x-amzm-header", "x-apigateway-header", "x-api-key", "authorization", "x-amz-date", "content-type"]
        } }])
    );
    // The Lambda authorizer is named; the operation it guards keeps the version a draft.
    assert_eq!(
        unsupported(&out),
        ["components.securitySchemes.myAuthorizer.x-amazon-apigateway-authorizer"]
    );
    assert!(
        out.report.unsupported[0]
            .message
            .contains("Lambda authorizer (`request`, Lambda function `function-name`)")
    );
    assert_eq!(version["status"], "draft");
    assert!(
        notes(&out)
            .iter()
            .any(|n| n.contains("imported as a draft") && n.contains("GET /pets/{petId}")),
        "{:?}",
        notes(&out)
    );
    assert!(
        version["spec"]
            .as_str()
            .unwrap()
            .contains("x-amazon-apigateway-cors")
    );
    assert_eq!(out.document["apis"][0]["name"], "example-pet-store");
    assert_eq!(version["version"], "1.0");

    // --upstream replaces the integrations' origin and keeps their paths.
    let out = import(
        &fixture("localstack-openapi.spec.json"),
        &with_upstream(MOCK),
    )
    .unwrap();
    assert_eq!(out.document["upstreams"][0]["targets"][0]["url"], MOCK);
    assert_eq!(
        route(&out.document, 0, "=/pets/{petId}", "GET")["policies"],
        json!([{ "request_transform": { "path": "/petstore/pets/{petId}" } }])
    );
    assert_eq!(
        notes(&out)
            .iter()
            .filter(|n| n.contains("replaced by --upstream"))
            .count(),
        1
    );
}

#[test]
fn the_terraform_export_has_lambda_and_mock_integrations_and_an_api_key() {
    // Nothing names an HTTP backend.
    let e = import(
        &fixture("localstack-openapi.spec.tf.json"),
        &Options::default(),
    )
    .unwrap_err();
    assert!(e.0.contains("no HTTP or HTTP_PROXY integration"), "{e}");
    assert!(e.0.contains("--upstream"), "{e}");

    let out = import(
        &fixture("localstack-openapi.spec.tf.json"),
        &with_upstream(MOCK),
    )
    .unwrap();
    assert_eq!(
        out.report.summary(),
        "1 upstream, 1 api, 1 version, 2 routes, 1 policy"
    );
    assert_eq!(
        unsupported(&out),
        [
            "paths./.get.x-amazon-apigateway-integration",
            "paths./.options.x-amazon-apigateway-integration"
        ]
    );
    assert!(
        out.report.unsupported[0]
            .message
            .contains("AWS_PROXY integration (Lambda function `s3OnObjectCreatedLambda-60c92b6`)")
    );
    assert!(
        out.report.unsupported[1]
            .message
            .contains("MOCK integration")
    );
    assert!(
        out.report.unsupported[1]
            .message
            .contains("CORS preflights")
    );
    // The api_key scheme: key_auth on x-api-key; the version is served.
    assert_eq!(
        route(&out.document, 0, "=/", "GET")["policies"],
        json!([{ "key_auth": {} }])
    );
    assert!(
        route(&out.document, 0, "=/", "OPTIONS")
            .get("policies")
            .is_none()
    );
    let version = &out.document["apis"][0]["versions"][0];
    assert!(version.get("status").is_none(), "published");
    assert_eq!(version["version"], "1");
    assert_eq!(out.document["apis"][0]["name"], "local-api");
}

#[test]
fn the_pulumi_export_is_a_draft_behind_an_authorizer() {
    let e = import(
        &fixture("localstack-openapi.spec.pulumi.json"),
        &Options::default(),
    )
    .unwrap_err();
    assert!(e.0.contains("no HTTP or HTTP_PROXY integration"), "{e}");
    assert!(e.0.contains("no `host`"), "{e}");

    let out = import(
        &fixture("localstack-openapi.spec.pulumi.json"),
        &with_upstream(MOCK),
    )
    .unwrap();
    assert_eq!(
        out.report.summary(),
        "1 upstream, 1 api, 1 version, 2 routes, 2 policies"
    );
    assert_eq!(
        unsupported(&out),
        [
            "x-amazon-apigateway-gateway-responses",
            "securityDefinitions.Auth0.x-amazon-apigateway-authorizer",
            "paths./{proxy+}.options.x-amazon-apigateway-integration",
            "paths./just_do_it.get.x-amazon-apigateway-integration",
        ]
    );
    assert!(
        out.report.unsupported[1]
            .message
            .contains("apiGwAuthorizerLambda-2152989")
    );
    // `{proxy+}` is a prefix route; API Gateway applies Auth0 *and* the API key to
    // /just_do_it, and Auth0 cannot be checked: a draft.
    assert_eq!(
        routes(&out.document, 0),
        [
            ("OPTIONS".into(), "/".into(), "".into()),
            ("GET".into(), "=/just_do_it".into(), "".into()),
        ]
    );
    assert_eq!(
        route(&out.document, 0, "=/just_do_it", "GET")["policies"],
        json!([{ "key_auth": {} }])
    );
    assert_eq!(out.document["apis"][0]["versions"][0]["status"], "draft");
    let notes = notes(&out);
    for expected in [
        "x-amazon-apigateway-binary-media-types: Tollgate forwards bodies as bytes",
        "paths./{proxy+}: `{proxy+}` is a prefix route",
        "GET /just_do_it",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(expected)),
            "{expected}: {notes:?}"
        );
    }
}

#[test]
fn the_usage_plan_template_becomes_a_product_with_a_plan() {
    let out = import(
        &fixture("awsdocs-rest-usage-plan.cfn.yaml"),
        &Options::default(),
    )
    .unwrap();
    assert!(
        out.report.unsupported.is_empty(),
        "{:?}",
        out.report.unsupported
    );
    assert_eq!(
        out.report.summary(),
        "1 upstream, 1 api, 2 versions, 2 routes, 4 policies, 1 product, 1 plan, 1 developer, 1 app, 1 subscription"
    );
    let doc = &out.document;
    assert_eq!(doc["apis"][0]["name"], "example-with-usage-plan");
    // The deployment's stage and the Stage resource: one version each, the stage in the path.
    let versions: Vec<&str> = doc["apis"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["tempstage", "test"]);
    assert_eq!(
        routes(doc, 1),
        [("GET".into(), "=/test/pets".into(), "".into())]
    );
    assert_eq!(
        route(doc, 0, "=/tempstage/pets", "GET")["policies"],
        json!([{ "request_transform": { "path": "/petstore/pets" } }])
    );
    // The usage plan's throttle (a 200/s bucket of 200) and the per-method one (100/100).
    assert_eq!(
        doc["products"],
        json!([{
            "name": "example-with-usage-plan-test",
            "apis": ["example-with-usage-plan@test"],
            "plans": [{
                "name": "exampleusageplan",
                "title": "ExampleUsagePlan",
                "rate_limit": { "limit": 200, "window": "1s", "burst": 200 }
            }]
        }])
    );
    assert_eq!(
        route(doc, 1, "=/test/pets", "GET")["policies"],
        json!([
            { "request_transform": { "path": "/petstore/pets" } },
            { "rate_limit": { "limit": 100, "window": "1s", "burst": 100 } }
        ])
    );
    // Subscribers are told apart by their key: the plan's version asks for one.
    assert_eq!(
        doc["apis"][0]["versions"][1]["policies"],
        json!([{ "key_auth": {} }])
    );
    assert!(doc["apis"][0]["versions"][0].get("policies").is_none());
    // The key's value is generated by AWS: the app has none, and the report says so.
    assert_eq!(
        doc["apps"],
        json!([{ "name": "myapikey", "owner": "api-keys@aws-import.invalid" }])
    );
    assert_eq!(
        doc["subscriptions"],
        json!([{ "app": "myapikey", "product": "example-with-usage-plan-test", "plan": "exampleusageplan" }])
    );
    let notes = notes(&out);
    for expected in [
        "Resources.MyAPIKey: API Gateway generates the key's value at deployment",
        "Resources.MyUsagePlan: API Gateway applies a usage plan only to methods that require an API key",
        "Resources.TestStage.Properties.Description: documentation only",
        "the upstream is plain HTTP",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(expected)),
            "{expected}: {notes:?}"
        );
    }
}

#[test]
fn anything_else_is_refused_naming_what_was_expected() {
    for text in [
        "{}",
        "a: 1\n",
        "[1, 2]\n",
        "info: { title: x }\npaths: {}\n",
    ] {
        let e = import(text, &Options::default()).unwrap_err();
        assert!(
            e.0.starts_with("not an AWS API Gateway export"),
            "{text}: {e}"
        );
    }
    let e = import("a: [", &Options::default()).unwrap_err();
    assert!(e.0.starts_with("not YAML or JSON"), "{e}");
    let e = import("openapi: 4.0.0\n", &Options::default()).unwrap_err();
    assert!(e.0.contains("openapi \"4.0.0\" is not supported"), "{e}");
    let e = import(
        "AWSTemplateFormatVersion: '2010-09-09'\n",
        &Options::default(),
    )
    .unwrap_err();
    assert!(e.0.contains("without a `Resources` map"), "{e}");
    let e = import(
        &fixture("localstack-openapi.spec.json"),
        &with_upstream("http://127.0.0.1:9/base"),
    )
    .unwrap_err();
    assert!(e.0.starts_with("--upstream"), "{e}");
}

const EXPORT: &str = r##"
swagger: "2.0"
info: { title: Shop, version: "2024-03-14T20:20:12Z" }
host: abc123.execute-api.eu-west-1.amazonaws.com
basePath: /prod
x-amazon-apigateway-api-key-source: HEADER
x-amazon-apigateway-request-validators: { all: { validateRequestBody: true } }
x-amazon-apigateway-documentation: { version: "1" }
securityDefinitions:
  api_key: { type: apiKey, name: x-api-key, in: header }
  sigv4: { type: apiKey, name: Authorization, in: header, x-amazon-apigateway-authtype: awsSigv4 }
paths:
  /items:
    get:
      security: [{ api_key: [] }]
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: https://backend.example.com/v2/items
    x-amazon-apigateway-any-method:
      x-amazon-apigateway-integration: { type: http_proxy, httpMethod: ANY, uri: "https://backend.example.com/v2/items" }
  /files/{proxy+}:
    get:
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: "https://backend.example.com/{proxy}"
        requestParameters: { integration.request.path.proxy: method.request.path.proxy }
  /admin:
    delete:
      security: [{ sigv4: [] }]
      x-amazon-apigateway-request-validator: all
      x-amazon-apigateway-integration: { type: http, httpMethod: DELETE, uri: "https://other.example.com/admin", requestTemplates: { application/json: "{}" } }
  /broken:
    get:
      x-amazon-apigateway-integration: { $ref: "#/x-amazon-apigateway-integrations/nope" }
"##;

#[test]
fn export_extensions_map_or_are_named() {
    let out = import(EXPORT, &Options::default()).unwrap();
    let doc = &out.document;
    // The base path prefixes the routes, as the OpenAPI importer does; the host is
    // API Gateway's own address, the upstream the integrations' backend.
    assert_eq!(
        doc["upstreams"][0]["targets"][0]["url"],
        "https://backend.example.com"
    );
    assert_eq!(
        routes(doc, 0),
        [
            ("GET".into(), "=/prod/items".into(), "".into()),
            (
                "DELETE|HEAD|OPTIONS|PATCH|POST|PUT".into(),
                "=/prod/items".into(),
                "".into()
            ),
            ("GET".into(), "/prod/files".into(), "".into()),
            ("DELETE".into(), "=/prod/admin".into(), "".into()),
            ("GET".into(), "=/prod/broken".into(), "".into()),
        ]
    );
    assert_eq!(
        route(doc, 0, "=/prod/items", "GET")["policies"],
        json!([{ "key_auth": {} }, { "request_transform": { "path": "/v2/items" } }])
    );
    // The greedy route forwards the rest of the path.
    assert_eq!(route(doc, 0, "/prod/files", "GET")["strip_prefix"], true);
    assert_eq!(
        unsupported(&out),
        [
            "x-amazon-apigateway-request-validators",
            "securityDefinitions.sigv4.x-amazon-apigateway-authtype",
            "paths./admin.delete.x-amazon-apigateway-request-validator",
            "paths./admin.delete.x-amazon-apigateway-integration.uri",
            "paths./admin.delete.x-amazon-apigateway-integration.requestTemplates",
            "paths./broken.get.x-amazon-apigateway-integration",
        ],
        "{:?}",
        out.report.unsupported
    );
    assert!(
        out.report.unsupported[3]
            .message
            .contains("a second backend `https://other.example.com`")
    );
    assert!(
        out.report.unsupported[5]
            .message
            .contains("does not point into this document")
    );
    // IAM authorization cannot be checked: the version is a draft.
    assert_eq!(doc["apis"][0]["versions"][0]["status"], "draft");
    assert!(
        notes(&out)
            .iter()
            .any(|n| n.starts_with("x-amazon-apigateway-documentation: documentation only"))
    );
    assert!(
        notes(&out)
            .iter()
            .any(|n| n.starts_with("host: API Gateway's own address"))
    );
    assert_eq!(
        doc["apis"][0]["versions"][0]["version"],
        "2024-03-14T20-20-12Z"
    );
}

#[test]
fn keys_from_an_authorizer_and_cors_credentials_for_everyone_are_named() {
    let text = r#"
openapi: 3.0.1
info: { title: t, version: "1" }
x-amazon-apigateway-api-key-source: AUTHORIZER
x-amazon-apigateway-cors: { allowOrigins: ["*"], allowCredentials: true, allowMethods: ["*"], allowHeaders: ["*"], maxAge: 600 }
components:
  securitySchemes:
    api_key: { type: apiKey, name: key, in: query }
paths:
  /a:
    get:
      security: [{ api_key: [] }]
      x-amazon-apigateway-integration: { type: HTTP_PROXY, httpMethod: GET, uri: "https://b.example/a" }
"#;
    let out = import(text, &Options::default()).unwrap();
    assert_eq!(
        unsupported(&out),
        [
            "x-amazon-apigateway-api-key-source",
            "x-amazon-apigateway-cors.allowCredentials"
        ]
    );
    assert_eq!(out.document["apis"][0]["versions"][0]["status"], "draft");
    assert_eq!(
        out.document["apis"][0]["versions"][0]["policies"],
        json!([{ "cors": {
            "origins": ["*"],
            "methods": ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"],
            "max_age": "600s"
        } }])
    );
    // With keys from the header, a query scheme still means API Gateway's x-api-key.
    let out = import(&text.replace("AUTHORIZER", "HEADER"), &Options::default()).unwrap();
    assert_eq!(
        route(&out.document, 0, "=/a", "GET")["policies"],
        json!([{ "key_auth": {} }])
    );
    assert!(notes(&out).iter().any(|n| n.starts_with(
        "components.securitySchemes.api_key: API Gateway reads API keys from the `x-api-key` header"
    )));
}

const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Backend: { Type: String, Default: orders.internal.example.com }
  Secret: { Type: String, NoEcho: true }
Mappings:
  Limits: { prod: { rate: 0.5, burst: 5 } }
Resources:
  Api:
    Type: AWS::ApiGateway::RestApi
    Properties: { Name: Orders API, Description: Orders, EndpointConfiguration: { Types: [REGIONAL] } }
  Orders:
    Type: AWS::ApiGateway::Resource
    Properties: { RestApiId: !Ref Api, ParentId: !GetAtt Api.RootResourceId, PathPart: orders }
  Order:
    Type: AWS::ApiGateway::Resource
    Properties: { RestApiId: !Ref Api, ParentId: !Ref Orders, PathPart: "{id}" }
  GetOrder:
    Type: AWS::ApiGateway::Method
    Properties:
      RestApiId: !Ref Api
      ResourceId: !Ref Order
      HttpMethod: GET
      AuthorizationType: NONE
      ApiKeyRequired: true
      OperationName: getOrder
      Integration:
        Type: HTTP_PROXY
        IntegrationHttpMethod: GET
        Uri: !Sub "https://${Backend}/v1/orders/{oid}"
        RequestParameters: { integration.request.path.oid: method.request.path.id }
  AnyOrder:
    Type: AWS::ApiGateway::Method
    Properties:
      RestApiId: !Ref Api
      ResourceId: !Ref Order
      HttpMethod: ANY
      AuthorizationType: AWS_IAM
      Integration:
        Type: AWS_PROXY
        IntegrationHttpMethod: POST
        Uri: !Join ["", ["arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/", !GetAtt Fn.Arn, "/invocations"]]
  Fn:
    Type: AWS::Lambda::Function
    Properties: { Handler: index.handler }
  Prod:
    Type: AWS::ApiGateway::Stage
    Properties:
      RestApiId: !Ref Api
      StageName: prod
      DeploymentId: !Ref Deploy
      Variables: { a: b }
      MethodSettings:
        - { ResourcePath: "/*", HttpMethod: "*", ThrottlingRateLimit: 1000, ThrottlingBurstLimit: 2000, MetricsEnabled: true }
  Deploy:
    Type: AWS::ApiGateway::Deployment
    Properties: { RestApiId: !Ref Api }
  Free:
    Type: AWS::ApiGateway::UsagePlan
    Properties:
      UsagePlanName: Free
      ApiStages: [{ ApiId: !Ref Api, Stage: !Ref Prod }]
      Throttle:
        RateLimit: !FindInMap [Limits, prod, rate]
        BurstLimit: !FindInMap [Limits, prod, burst]
      Quota: { Limit: 1000, Period: MONTH }
  Pro:
    Type: AWS::ApiGateway::UsagePlan
    Properties:
      UsagePlanName: Pro
      ApiStages: [{ ApiId: !Ref Api, Stage: prod }]
      Quota: { Limit: 100, Period: WEEK }
  Partner:
    Type: AWS::ApiGateway::ApiKey
    Properties: { Name: Partner Key, Value: partner-key-0123456789abc, Enabled: false }
  Hidden:
    Type: AWS::ApiGateway::ApiKey
    Properties: { Value: !Ref Secret }
  PartnerFree:
    Type: AWS::ApiGateway::UsagePlanKey
    Properties: { KeyId: !Ref Partner, KeyType: API_KEY, UsagePlanId: !Ref Free }
  PartnerPro:
    Type: AWS::ApiGateway::UsagePlanKey
    Properties: { KeyId: !Ref Partner, KeyType: API_KEY, UsagePlanId: !Ref Pro }
  Auth:
    Type: AWS::ApiGateway::Authorizer
    Properties: { Type: COGNITO_USER_POOLS, ProviderARNs: ["arn:aws:cognito-idp:eu-west-1:1:userpool/eu-west-1_X"] }
"#;

#[test]
fn templates_resolve_their_functions_and_map_plans_and_keys() {
    let out = import(TEMPLATE, &Options::default()).unwrap();
    let doc = &out.document;
    assert_eq!(
        out.report.summary(),
        "1 upstream, 1 api, 1 version, 2 routes, 4 policies, 1 product, 2 plans, 1 developer, 2 apps, 1 subscription"
    );
    // `!Sub` with a parameter's default gives the backend; the mapped path parameter
    // takes the route's.
    assert_eq!(
        doc["upstreams"][0]["targets"][0]["url"],
        "https://orders.internal.example.com"
    );
    assert_eq!(doc["apis"][0]["name"], "orders-api");
    assert_eq!(
        routes(doc, 0),
        [
            ("GET".into(), "=/prod/orders/{id}".into(), "getOrder".into()),
            (
                "DELETE|HEAD|OPTIONS|PATCH|POST|PUT".into(),
                "=/prod/orders/{id}".into(),
                "".into()
            ),
        ]
    );
    assert_eq!(
        route(doc, 0, "=/prod/orders/{id}", "GET")["policies"],
        json!([{ "key_auth": {} }, { "request_transform": { "path": "/v1/orders/{id}" } }])
    );
    let version = &doc["apis"][0]["versions"][0];
    // The stage throttle counts every caller together; the plans' subscribers are told
    // apart by key (ANY needed none); the IAM method keeps the version a draft.
    assert_eq!(
        version["policies"],
        json!([
            { "key_auth": {} },
            { "rate_limit": { "limit": 1000, "window": "1s", "burst": 2000, "by": "api" } }
        ])
    );
    assert_eq!(version["status"], "draft");
    // Two usage plans on the same stage: one product with both plans.
    assert_eq!(
        doc["products"],
        json!([{
            "name": "orders-api-prod",
            "apis": ["orders-api@prod"],
            "plans": [
                { "name": "free", "title": "Free", "rate_limit": { "limit": 1, "window": "2s", "burst": 5 }, "quota": { "limit": 1000, "period": "month" } },
                { "name": "pro", "title": "Pro" }
            ]
        }])
    );
    assert_eq!(
        doc["apps"],
        json!([
            { "name": "partner-key", "owner": "api-keys@aws-import.invalid", "keys": [{ "secret": "partner-key-0123456789abc" }], "disabled": true },
            { "name": "hidden", "owner": "api-keys@aws-import.invalid" }
        ])
    );
    assert_eq!(
        doc["subscriptions"],
        json!([{ "app": "partner-key", "product": "orders-api-prod", "plan": "free" }])
    );
    assert_eq!(
        unsupported(&out),
        [
            "Resources.Api.Properties.EndpointConfiguration",
            "Resources.Prod.Properties.Variables",
            "Resources.Auth",
            "Resources.AnyOrder.Properties.AuthorizationType",
            "Resources.AnyOrder.Properties.Integration",
            "Resources.Pro.Properties.Quota.Period",
            "Resources.PartnerPro.Properties",
        ],
        "{:#?}",
        out.report.unsupported
    );
    let messages: Vec<String> = out
        .report
        .unsupported
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        messages[2].contains(
            "Cognito user pool authorizer (arn:aws:cognito-idp:eu-west-1:1:userpool/eu-west-1_X)"
        ),
        "{}",
        messages[2]
    );
    assert!(
        messages[4].contains("AWS_PROXY integration (a URI known only at deployment)"),
        "{}",
        messages[4]
    );
    assert!(
        messages[6].contains("one subscription per product"),
        "{}",
        messages[6]
    );
    let notes = notes(&out);
    for expected in [
        "Resources.Fn: `AWS::Lambda::Function` is not part of API Gateway",
        "Resources.Hidden.Properties.Value: the key's value is known only at deployment",
        "MethodSettings[0].MetricsEnabled",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(expected)),
            "{expected}: {notes:#?}"
        );
    }
}

#[test]
fn a_template_without_a_backend_needs_an_upstream() {
    let text = r#"
Resources:
  Api: { Type: AWS::ApiGateway::RestApi, Properties: { Name: fn } }
  M:
    Type: AWS::ApiGateway::Method
    Properties:
      RestApiId: !Ref Api
      ResourceId: !GetAtt [Api, RootResourceId]
      HttpMethod: POST
      AuthorizationType: NONE
      Integration: { Type: HTTP_PROXY, IntegrationHttpMethod: POST, Uri: !GetAtt Lb.DNSName }
"#;
    let e = import(text, &Options::default()).unwrap_err();
    assert!(
        e.0.contains("names a backend: pass the upstream with --upstream URL"),
        "{e}"
    );
    let out = import(text, &with_upstream(MOCK)).unwrap();
    assert_eq!(
        unsupported(&out),
        ["Resources.M.Properties.Integration.Uri"]
    );
    assert!(
        out.report.unsupported[0]
            .message
            .contains("only known at deployment")
    );
    // Deployed to no stage: a draft without a stage prefix.
    let version = &out.document["apis"][0]["versions"][0];
    assert_eq!(
        (version["version"].as_str(), version["status"].as_str()),
        (Some("v1"), Some("draft"))
    );
    assert_eq!(
        routes(&out.document, 0),
        [("POST".into(), "=/".into(), "".into())]
    );
    let e = import(
        text,
        &Options {
            upstream: Some(MOCK.into()),
            name: Some("x".into()),
        },
    )
    .unwrap();
    assert_eq!(e.document["apis"][0]["name"], "x");
}

proptest::proptest! {
    /// Whatever is left of the template after dropping some of its lines, the importer
    /// answers an error or a configuration that passed validation, and never panics.
    #[test]
    fn templates_with_lines_dropped_never_panic(keep in proptest::collection::vec(proptest::bool::weighted(0.85), 64)) {
        let text: String = TEMPLATE
            .lines()
            .zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|(l, _)| format!("{l}\n"))
            .collect();
        let _ = import(&text, &Options::default());
        let _ = import(&text, &with_upstream(MOCK));
    }

    #[test]
    fn exports_with_lines_dropped_never_panic(keep in proptest::collection::vec(proptest::bool::weighted(0.85), 64)) {
        let text: String = EXPORT
            .lines()
            .zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|(l, _)| format!("{l}\n"))
            .collect();
        let _ = import(&text, &Options::default());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = import(&text, &Options::default());
    }
}

#[test]
fn two_apis_and_two_keys_of_one_name_get_names_and_paths_of_their_own() {
    let api = |id: &str| {
        format!(
            "  {id}: {{ Type: AWS::ApiGateway::RestApi, Properties: {{ Name: Shop }} }}\n  {id}Get:\n    Type: AWS::ApiGateway::Method\n    Properties: {{ RestApiId: !Ref {id}, ResourceId: !GetAtt {id}.RootResourceId, HttpMethod: GET, Integration: {{ Type: HTTP_PROXY, Uri: 'https://{id}.example.com/' }} }}\n"
        )
    };
    let text = format!(
        "Resources:\n{}{}  K1: {{ Type: AWS::ApiGateway::ApiKey, Properties: {{ Name: ci }} }}\n  K2: {{ Type: AWS::ApiGateway::ApiKey, Properties: {{ Name: ci }} }}\n",
        api("A"),
        api("B")
    );
    let out = import(&text, &Options::default()).unwrap();
    let names = |k: &str| -> Vec<Value> {
        out.document[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].clone())
            .collect()
    };
    assert_eq!(names("apis"), [json!("shop"), json!("shop-2")]);
    assert_eq!(
        names("upstreams"),
        [json!("shop-upstream"), json!("shop-2-upstream")]
    );
    assert_eq!(names("apps"), [json!("ci"), json!("ci-2")]);
    // Each had a host of its own in API Gateway; here the API's name starts its routes.
    assert_eq!(
        routes(&out.document, 0),
        [("GET".into(), "=/shop".into(), "".into())]
    );
    assert_eq!(
        out.document["apis"][1]["versions"][0]["routes"][0]["path"],
        "=/shop-2"
    );
    assert_eq!(
        out.document["upstreams"][1]["targets"][0]["url"],
        "https://B.example.com"
    );
}
