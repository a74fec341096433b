//! Real WebRTC peers (webrtc-rs) for the call journeys: a peer connection with a data
//! channel and a VP8 track, configured from the daemon's `/api/ice-servers`.

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_VP8};
use webrtc::api::APIBuilder;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

/// One side of a call.
pub struct Peer {
    pub pc: Arc<RTCPeerConnection>,
    /// Messages received on any data channel.
    pub messages: mpsc::UnboundedReceiver<String>,
    /// Payloads of RTP packets received on any track.
    pub rtp: mpsc::UnboundedReceiver<Vec<u8>>,
    connected: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    pub track: Arc<TrackLocalStaticRTP>,
}

/// Turns `/api/ice-servers` JSON into webrtc-rs servers.
pub fn ice_servers(v: &Value) -> Vec<RTCIceServer> {
    v["iceServers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| RTCIceServer {
            urls: s["urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect(),
            username: s["username"].as_str().unwrap_or_default().to_string(),
            credential: s["credential"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

impl Peer {
    /// A peer using `servers`; `relay_only` forces every path through TURN.
    pub async fn new(servers: Vec<RTCIceServer>, relay_only: bool) -> Peer {
        let mut m = MediaEngine::default();
        m.register_default_codecs().unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut m).unwrap();
        let api = APIBuilder::new().with_media_engine(m).with_interceptor_registry(registry).build();
        let config = RTCConfiguration {
            ice_servers: servers,
            ice_transport_policy: if relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All },
            ..Default::default()
        };
        let pc = Arc::new(api.new_peer_connection(config).await.unwrap());
        let (msg_tx, messages) = mpsc::unbounded_channel();
        pc.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
            let tx = msg_tx.clone();
            Box::pin(async move {
                let echo = dc.clone();
                dc.on_message(Box::new(move |m| {
                    let text = String::from_utf8_lossy(&m.data).to_string();
                    let _ = tx.send(text.clone());
                    let echo = echo.clone();
                    Box::pin(async move {
                        let _ = echo.send_text(format!("echo:{text}")).await;
                    })
                }));
            })
        }));
        let (rtp_tx, rtp) = mpsc::unbounded_channel();
        pc.on_track(Box::new(move |track, _, _| {
            let tx = rtp_tx.clone();
            tokio::spawn(async move {
                while let Ok((pkt, _)) = track.read_rtp().await {
                    if tx.send(pkt.payload.to_vec()).is_err() {
                        break;
                    }
                }
            });
            Box::pin(async {})
        }));
        let (state_tx, connected) = mpsc::unbounded_channel();
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = state_tx.send(s);
            Box::pin(async {})
        }));
        let track = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability { mime_type: MIME_TYPE_VP8.to_owned(), ..Default::default() },
            "video".to_owned(),
            "quickmeet-test".to_owned(),
        ));
        pc.add_track(track.clone()).await.unwrap();
        Peer { pc, messages, rtp, connected, track }
    }

    /// Creates an offer and waits for ICE gathering, so the SDP carries every candidate.
    pub async fn offer(&self) -> String {
        let offer = self.pc.create_offer(None).await.unwrap();
        let mut done = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(offer).await.unwrap();
        let _ = done.recv().await;
        self.pc.local_description().await.unwrap().sdp
    }

    /// Answers an offer, candidates included.
    pub async fn answer(&self, offer_sdp: &str) -> String {
        self.pc.set_remote_description(RTCSessionDescription::offer(offer_sdp.to_string()).unwrap()).await.unwrap();
        let answer = self.pc.create_answer(None).await.unwrap();
        let mut done = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(answer).await.unwrap();
        let _ = done.recv().await;
        self.pc.local_description().await.unwrap().sdp
    }

    pub async fn accept_answer(&self, sdp: &str) {
        self.pc.set_remote_description(RTCSessionDescription::answer(sdp.to_string()).unwrap()).await.unwrap();
    }

    /// Waits until the peer connection is connected.
    pub async fn wait_connected(&mut self) {
        let wait = async {
            while let Some(s) = self.connected.recv().await {
                assert!(s != RTCPeerConnectionState::Failed, "peer connection failed");
                if s == RTCPeerConnectionState::Connected {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.expect("peer connection did not connect");
    }

    /// Sends RTP packets with `payload` every 20 ms until the returned guard is dropped.
    pub fn stream_rtp(&self, payload: &'static [u8]) -> tokio::task::JoinHandle<()> {
        let track = self.track.clone();
        tokio::spawn(async move {
            let mut seq: u16 = 0;
            loop {
                let pkt = webrtc::rtp::packet::Packet {
                    header: webrtc::rtp::header::Header {
                        version: 2,
                        payload_type: 96,
                        sequence_number: seq,
                        timestamp: seq as u32 * 3000,
                        ssrc: 1,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from_static(payload),
                };
                let _ = track.write_rtp(&pkt).await;
                seq = seq.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    /// Waits for an RTP packet with exactly `payload`.
    pub async fn expect_rtp(&mut self, payload: &[u8]) {
        let wait = async {
            while let Some(p) = self.rtp.recv().await {
                if p == payload {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait).await.expect("no RTP packet arrived");
    }

    /// Waits for a data-channel message.
    pub async fn expect_message(&mut self, want: &str) {
        let got =
            tokio::time::timeout(Duration::from_secs(20), self.messages.recv()).await.expect("no message").unwrap();
        assert_eq!(got, want);
    }
}

/// Opens a data channel and returns a receiver of its messages once it is open.
pub async fn open_channel(
    pc: &RTCPeerConnection,
    label: &str,
) -> (Arc<RTCDataChannel>, mpsc::UnboundedReceiver<String>) {
    let dc = pc.create_data_channel(label, None).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    dc.on_message(Box::new(move |m| {
        let _ = tx.send(String::from_utf8_lossy(&m.data).to_string());
        Box::pin(async {})
    }));
    (dc, rx)
}

/// Waits until a data channel is open.
pub async fn wait_open(dc: &RTCDataChannel) {
    use webrtc::data_channel::data_channel_state::RTCDataChannelState;
    for _ in 0..400 {
        if dc.ready_state() == RTCDataChannelState::Open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("data channel did not open");
}
