/** Voice and video calls over WebRTC, signaled through CAAS (caas.calls.v1.CallsService). */
export * from "./calls.js";
export { PeerLink, iceUfrags, sdpSessionId, type CallPeer, type PeerLinkOptions, type PeerRole, type PeerState, type SignalBody } from "./peer.js";
