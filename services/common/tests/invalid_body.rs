//! A request body that is not the RPC's message is the client's mistake: a real server on
//! 127.0.0.1:0, built with `grpc::server_builder`, answers garbage with `INVALID_ARGUMENT`.

use prost::bytes::{Buf as _, BufMut as _};
use shadowsync_common::grpc;
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends and receives raw bytes, so the client can put anything in the body.
#[derive(Clone, Default)]
struct RawCodec;

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

async fn call(address: std::net::SocketAddr, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let channel = grpc::channel(&format!("http://{address}"), None).expect("channel");
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("ready");
    client
        .unary(
            tonic::Request::new(body),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check"),
            RawCodec,
        )
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn an_undecodable_body_is_invalid_argument() {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = grpc::server_builder(None)
        .expect("builder")
        .add_service(health);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(grpc::serve(router, listener, async {
        let _ = stopped.await;
    }));

    // Field 1 with wire type 7 (no such type), a truncated varint, a length past the end.
    for garbage in [vec![0x0f, 0x01], vec![0x08, 0xff], vec![0x0a, 0x7f, b'x']] {
        let status = call(address, garbage.clone()).await.expect_err("garbage");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{garbage:?}: {status:?}"
        );
    }
    // A well-formed (empty) request still works: the layer changes nothing else.
    call(address, Vec::new())
        .await
        .expect("an empty HealthCheckRequest is valid");

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}
