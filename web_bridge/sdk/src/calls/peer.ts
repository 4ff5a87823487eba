/**
 * One WebRTC link between this device and another device in a call: its
 * RTCPeerConnection, the offer/answer exchange, trickled ICE candidates (kept until they
 * can be used) and ICE restarts. It knows nothing of CAAS: signals come in through
 * `receive` and go out through the `send` it is given, in order.
 *
 * The offer rule: of two devices, the one that joined the call later sends the offer
 * (CallsService: "the device joining sends the offers"), and only it ever offers on that
 * link, ICE restarts included. So offers never cross (no glare) and no rollback is
 * needed. An offer from a device whose link here is not an answering one, or whose SDP
 * session id (the `o=` line) is not the one it answered before, comes from a new
 * RTCPeerConnection of that device (it reloaded and joined again): `acceptsOffer` says
 * so, and the caller replaces the link.
 */
import { SessionDescription_Type, type IceCandidate, type SessionDescription } from "../gen/caas/calls/v1/resources_pb.js";

/** A device in a call: the user and its Subscribe `device_id`. */
export interface CallPeer {
  userId: string;
  deviceId: string;
}

/** Who sends the offers on a link: the device that joined later. */
export type PeerRole = "offerer" | "answerer";

/** Where a link stands. */
export type PeerState = "connecting" | "connected" | "reconnecting" | "closed";

/** What a signal carries (SendSignal's `description` or `candidate`). */
export type SignalBody =
  | { case: "description"; value: Pick<SessionDescription, "type" | "sdp"> }
  | { case: "candidate"; value: Pick<IceCandidate, "candidate" | "sdpMid" | "sdpMLineIndex" | "usernameFragment"> };

export interface PeerLinkOptions {
  peer: CallPeer;
  role: PeerRole;
  /** The connection (`new RTCPeerConnection({ iceServers })`, or a test's stand-in). */
  connection: RTCPeerConnection;
  /** This device's camera and microphone; without it the link only receives. */
  localStream?: MediaStream;
  /** Receive video too when there is no local stream (an offerer's transceivers). */
  video?: boolean;
  /** Sends a signal to the peer; the link calls it one at a time, in order. */
  send: (body: SignalBody) => Promise<void>;
  /** ICE disconnected this long (ms) makes the offerer restart ICE (default 3000). */
  restartAfterMs?: number;
  /** Fresh ICE servers before a restart (TURN credentials expire); undefined keeps them. */
  iceServers?: () => Promise<RTCIceServer[] | undefined>;
  onState?: (state: PeerState) => void;
  /** A remote stream (once per stream). */
  onTrack?: (stream: MediaStream) => void;
  onError?: (error: unknown) => void;
}

/** Candidates kept for later at most (a peer that floods is not followed further). */
const MAX_PENDING = 256;

/** The SDP session id of a description (its `o=` line): one per RTCPeerConnection. */
export function sdpSessionId(sdp: string): string {
  return /^o=\S+ (\S+) /m.exec(sdp)?.[1] ?? "";
}

/** The ICE username fragments of a description (one per generation in use). */
export function iceUfrags(sdp: string): Set<string> {
  return new Set([...sdp.matchAll(/^a=ice-ufrag:(\S+)/gm)].map((match) => match[1]));
}

const TYPES: Record<string, SessionDescription_Type> = {
  offer: SessionDescription_Type.OFFER,
  answer: SessionDescription_Type.ANSWER,
  pranswer: SessionDescription_Type.PRANSWER,
  rollback: SessionDescription_Type.ROLLBACK,
};
const RTC_TYPES = new Map<SessionDescription_Type, RTCSdpType>(
  Object.entries(TYPES).map(([name, type]) => [type, name as RTCSdpType]),
);

export class PeerLink {
  readonly peer: CallPeer;
  readonly role: PeerRole;
  readonly connection: RTCPeerConnection;
  private current: PeerState = "connecting";
  private wasConnected = false;
  private outbox: Promise<void> = Promise.resolve();
  private inbox: Promise<void> = Promise.resolve();
  private pending: RTCIceCandidateInit[] = [];
  private remoteSession = "";
  private tracksAdded = false;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private lastRestart = 0;
  private readonly streams = new Set<string>();

  constructor(private readonly options: PeerLinkOptions) {
    this.peer = options.peer;
    this.role = options.role;
    const connection = (this.connection = options.connection);
    connection.onicecandidate = (event) => {
      const candidate = event.candidate;
      this.post({
        case: "candidate",
        value: candidate
          ? {
              candidate: candidate.candidate,
              sdpMid: candidate.sdpMid ?? "",
              sdpMLineIndex: candidate.sdpMLineIndex ?? 0,
              usernameFragment: candidate.usernameFragment ?? "",
            }
          : { candidate: "", sdpMid: "", sdpMLineIndex: 0, usernameFragment: "" }, // the end
      });
    };
    connection.oniceconnectionstatechange = () => this.iceChanged();
    connection.ontrack = (event) => {
      const stream = event.streams[0] ?? (typeof MediaStream === "function" ? new MediaStream([event.track]) : undefined);
      if (!stream || this.streams.has(stream.id)) return;
      this.streams.add(stream.id);
      this.options.onTrack?.(stream);
    };
    if (this.role === "offerer") {
      // Adding the tracks (and later restartIce) makes the connection ask for an offer.
      connection.onnegotiationneeded = () => {
        void this.offer();
      };
      this.addTracks();
    }
  }

  get state(): PeerState {
    return this.current;
  }

  /** Closed for good (a getter: it changes across awaits). */
  get closed(): boolean {
    return this.current === "closed";
  }

  /** Whether an offer with this SDP belongs on this link (else: a new link answers it). */
  acceptsOffer(sdp: string): boolean {
    return this.role === "answerer" && !this.closed &&
      (this.remoteSession === "" || this.remoteSession === sdpSessionId(sdp));
  }

  /** A signal from the peer: handled after the ones before it. */
  receive(body: SignalBody): Promise<void> {
    this.inbox = this.inbox.then(() => this.handle(body)).catch((error: unknown) => this.fail(error));
    return this.inbox;
  }

  /** Hang up this link (idempotent). */
  close(): void {
    if (this.closed) return;
    clearTimeout(this.restartTimer);
    this.setState("closed");
    const connection = this.connection;
    connection.onicecandidate = connection.oniceconnectionstatechange = null;
    connection.ontrack = connection.onnegotiationneeded = null;
    connection.close();
  }

  /** Restart ICE now (the offerer; an answerer waits for the offerer's new offer). */
  async restart(): Promise<void> {
    if (this.role !== "offerer" || this.closed) return;
    clearTimeout(this.restartTimer);
    this.lastRestart = Date.now();
    // A restart on a working path (a network change) keeps using it until the new one
    // is up: only a lost path is "reconnecting".
    if (this.state !== "connected") this.setState("reconnecting");
    try {
      const servers = await this.options.iceServers?.();
      if (servers && !this.closed) {
        this.connection.setConfiguration({ ...this.connection.getConfiguration(), iceServers: servers });
      }
    } catch (error) {
      this.options.onError?.(error); // the old servers may still do
    }
    if (!this.closed) this.connection.restartIce(); // negotiationneeded: a new offer
  }

  private addTracks(): void {
    if (this.tracksAdded) return;
    this.tracksAdded = true;
    const stream = this.options.localStream;
    if (stream) {
      for (const track of stream.getTracks()) this.connection.addTrack(track, stream);
    } else if (this.role === "offerer") {
      this.connection.addTransceiver("audio", { direction: "recvonly" });
      if (this.options.video) this.connection.addTransceiver("video", { direction: "recvonly" });
    }
  }

  private post(body: SignalBody): void {
    if (this.closed) return;
    this.outbox = this.outbox
      .then(() => (this.closed ? undefined : this.options.send(body)))
      .catch((error: unknown) => this.options.onError?.(error));
  }

  private async offer(): Promise<void> {
    const connection = this.connection;
    if (this.closed || connection.signalingState !== "stable") return;
    try {
      await connection.setLocalDescription();
      const local = connection.localDescription;
      if (local && !this.closed) {
        this.post({ case: "description", value: { type: SessionDescription_Type.OFFER, sdp: local.sdp } });
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private async handle(body: SignalBody): Promise<void> {
    if (this.closed) return;
    const connection = this.connection;
    if (body.case === "candidate") {
      const { candidate, sdpMid, sdpMLineIndex, usernameFragment } = body.value;
      const init: RTCIceCandidateInit = {
        candidate,
        sdpMid: sdpMid || null,
        sdpMLineIndex,
        usernameFragment: usernameFragment || null,
      };
      const remote = connection.remoteDescription;
      if (!remote || (init.usernameFragment && !iceUfrags(remote.sdp).has(init.usernameFragment))) {
        // Before the description it belongs to (or of a newer generation): kept.
        if (this.pending.length < MAX_PENDING) this.pending.push(init);
        return;
      }
      await this.addCandidate(init);
      return;
    }
    const type = RTC_TYPES.get(body.value.type);
    if (type === "offer") {
      if (this.role !== "answerer") return; // not ours to answer: the caller replaces the link
      if (connection.signalingState !== "stable") return; // cannot happen with one offerer
      await connection.setRemoteDescription({ type, sdp: body.value.sdp });
      this.remoteSession = sdpSessionId(body.value.sdp);
      this.addTracks(); // after the offer: they take its transceivers, no renegotiation
      await this.flush();
      await connection.setLocalDescription();
      const local = connection.localDescription;
      if (local) this.post({ case: "description", value: { type: SessionDescription_Type.ANSWER, sdp: local.sdp } });
      return;
    }
    if (type === "answer" || type === "pranswer") {
      if (this.role !== "offerer" || connection.signalingState !== "have-local-offer") return; // stale
      await connection.setRemoteDescription({ type, sdp: body.value.sdp });
      this.remoteSession = sdpSessionId(body.value.sdp);
      await this.flush();
      this.iceChanged(); // a restart may leave ICE connected all along: no event then
    }
    // A rollback never comes from a peer that follows the offer rule.
  }

  /** Candidates kept for the description now set: added; older generations dropped. */
  private async flush(): Promise<void> {
    const remote = this.connection.remoteDescription;
    if (!remote) return;
    const ufrags = iceUfrags(remote.sdp);
    const kept = this.pending;
    this.pending = [];
    for (const init of kept) {
      if (!init.usernameFragment || ufrags.has(init.usernameFragment)) await this.addCandidate(init);
      else if (this.pending.length < MAX_PENDING) this.pending.push(init); // perhaps newer still
    }
  }

  private async addCandidate(init: RTCIceCandidateInit): Promise<void> {
    try {
      await this.connection.addIceCandidate(init);
    } catch (error) {
      // The end of candidates is a hint some browsers refuse; a bad candidate costs a path.
      if (init.candidate) this.options.onError?.(error);
    }
  }

  private iceChanged(): void {
    const ice = this.connection.iceConnectionState;
    switch (ice) {
      case "checking":
      case "new":
        this.setState(this.wasConnected ? "reconnecting" : "connecting");
        break;
      case "connected":
      case "completed":
        clearTimeout(this.restartTimer);
        this.restartTimer = undefined;
        this.wasConnected = true;
        this.setState("connected");
        break;
      case "disconnected":
        // Often back by itself within seconds; the offerer restarts ICE if not.
        this.setState("reconnecting");
        if (this.role === "offerer" && this.restartTimer === undefined) {
          this.restartTimer = setTimeout(() => {
            this.restartTimer = undefined;
            if (this.connection.iceConnectionState === "disconnected") void this.restart();
          }, this.options.restartAfterMs ?? 3000);
        }
        break;
      case "failed":
        this.setState("reconnecting");
        if (this.role === "offerer") {
          // At most one restart per `restartAfterMs`: a restart that fails again waits.
          const wait = Math.max(0, this.lastRestart + (this.options.restartAfterMs ?? 3000) - Date.now());
          clearTimeout(this.restartTimer);
          this.restartTimer = setTimeout(() => {
            this.restartTimer = undefined;
            if (this.connection.iceConnectionState === "failed") void this.restart();
          }, wait);
        }
        break;
      case "closed":
        this.close();
        break;
    }
  }

  private setState(state: PeerState): void {
    if (state === this.current || this.closed) return;
    this.current = state;
    this.options.onState?.(state);
  }

  private fail(error: unknown): void {
    this.options.onError?.(error);
  }
}
