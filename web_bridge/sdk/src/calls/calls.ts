/**
 * Voice and video calls (caas.calls.v1.CallsService) for one device of a signed-in user:
 * ringing, placing, answering, declining and hanging up, the camera and microphone, and
 * a WebRTC link (`PeerLink`) to each other device in the call, a full mesh. Signals go
 * out by SendSignal and come in on the device's realtime stream (`call.signal` reaches
 * only the stream whose `device_id` is this device's), as do the call's changes
 * (`call.started`, `call.updated`, `call.ended`).
 *
 * The device that joins sends the offers, to each device already in the call, and is
 * the one that restarts ICE on those links (see peer.ts): a caller answers the offers of
 * the devices that answer its call.
 */
import type { Client } from "@connectrpc/connect";

import { errorReason } from "../client.js";
import type { Event } from "../gen/caas/events/v1/events_pb.js";
import type { CallsService } from "../gen/caas/calls/v1/calls_service_pb.js";
import {
  Call_Media,
  Call_State,
  Participant_State,
  SessionDescription_Type,
  type Call,
  type IceServer,
  type Participant,
  type Signal,
} from "../gen/caas/calls/v1/resources_pb.js";
import { PeerLink, type CallPeer, type PeerState, type SignalBody } from "./peer.js";

/** What Calls calls: `createCaasClient`'s client once it carries `calls`, or
 * `{ calls: createClient(CallsService, transport) }` on the same authenticated transport. */
export interface CallsServices {
  calls: Client<typeof CallsService>;
}

/** Where the device's realtime events come from: a `Subscription` or a `ChatClient`. */
export type CallEventSource =
  | { listen(handlers: { event?: (event: Event) => void }): () => void }
  | { onEvent(handler: (event: Event) => void): () => void };

/**
 * Where this device stands: nothing going on; rung (an incoming call, not answered
 * yet); placing a call nobody has answered yet; in a call, before any other device is
 * connected; connected to every other device; reconnecting to one of them at least;
 * out of the call that was (until the next one).
 */
export type CallPhase = "idle" | "ringing" | "calling" | "connecting" | "connected" | "reconnecting" | "ended";

export interface CallsEvents {
  /** The phase changed. */
  state: (phase: CallPhase) => void;
  /** Someone calls this user: answer with `accept(call)` or `decline(call)`. */
  ringing: (call: Call) => void;
  /** A call that rang here stopped ringing: answered or declined on another device of
   * the user, missed, or canceled by its caller. */
  ringEnded: (call: Call) => void;
  /** Each new state of the call this device is in (or is rung for). */
  call: (call: Call) => void;
  /** Someone answered, declined, joined or left the call this device is in. */
  participants: (participants: Participant[], call: Call) => void;
  /** A link to another device is connected (media flows). */
  connected: (peer: CallPeer) => void;
  /** A link lost its path and is being restored (ICE restart). */
  reconnecting: (peer: CallPeer) => void;
  /** The media of another device, to show in a `<video>` (or play in an `<audio>`). */
  track: (peer: CallPeer, stream: MediaStream) => void;
  /** The link to another device is gone (it left): remove its video. */
  peerClosed: (peer: CallPeer) => void;
  /** This device's camera and microphone, for a preview (muted!). */
  localStream: (stream: MediaStream) => void;
  /** This device is out of the call: `call.state` is ENDED with its `outcome`, or the
   * call goes on without it (it left a group call). */
  ended: (call: Call) => void;
  /** Something failed that the app may want to show (a signal not sent, a refused SDP). */
  error: (error: unknown) => void;
}

export interface CallsOptions {
  client: CallsServices;
  /** `apps/{app}/users/{user}`. */
  user: string;
  /** This device: the `deviceId` its realtime subscription was opened with. */
  deviceId: string;
  /** Follow this stream (else call `follow` yourself). */
  events?: CallEventSource;
  /** The camera and microphone (default `navigator.mediaDevices.getUserMedia`). */
  getUserMedia?: (constraints: MediaStreamConstraints) => Promise<MediaStream>;
  /** A connection (default `new RTCPeerConnection(config)`). */
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection;
  /** What `start` and `accept` ask for (default: audio, and video for a video call). */
  constraints?: (video: boolean) => MediaStreamConstraints;
  /** ICE disconnected this long (ms) before the offering side restarts it (3000). */
  restartAfterMs?: number;
}

const key = (peer: CallPeer) => `${peer.userId}\n${peer.deviceId}`;

/** RTCPeerConnection's `iceServers` from the server's. */
export function rtcIceServers(servers: readonly IceServer[]): RTCIceServer[] {
  return servers.map((server) => ({
    urls: [...server.urls],
    ...(server.username ? { username: server.username } : {}),
    ...(server.credential ? { credential: server.credential } : {}),
  }));
}

/** Refusals of a signal that only mean the link is going away. */
const SIGNAL_TOO_LATE = new Set(["CALL_ENDED", "CALL_NOT_JOINED"]);

/** Signals held while StartCall or AcceptCall is on its way (at most this many). */
const MAX_EARLY = 200;

export class Calls {
  /** The user's id. */
  readonly userId: string;
  readonly deviceId: string;
  private readonly handlers = new Map<keyof CallsEvents, Set<(...args: never[]) => void>>();
  private readonly links = new Map<string, PeerLink>();
  private readonly incoming = new Map<string, Call>();
  private readonly orphans = new Map<string, SignalBody[]>(); // candidates before their offer
  private current: Call | undefined;
  private joining = false;
  private joiningName = ""; // the call AcceptCall is answering
  private early: Signal[] = [];
  private endedEarly = new Map<string, Call>(); // calls that ended while joining
  private synced = false; // the stream has caught up with this device's join
  private stream: MediaStream | undefined;
  private iceServers: RTCIceServer[] = [];
  private currentPhase: CallPhase = "idle";
  private readonly stops: Array<() => void> = [];

  constructor(private readonly options: CallsOptions) {
    const at = options.user.indexOf("/users/");
    if (at < 0) throw new Error(`not a user name: ${options.user}`);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(options.deviceId)) {
      throw new Error("deviceId: 1 to 64 letters, digits, `_`, `.` and `-` (the stream's device id)");
    }
    this.userId = options.user.slice(at + "/users/".length);
    this.deviceId = options.deviceId;
    if (options.events) this.follow(options.events);
  }

  /** Listen to an event until the returned function is called. */
  on<K extends keyof CallsEvents>(event: K, handler: CallsEvents[K]): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    const added = handler as (...args: never[]) => void;
    set.add(added);
    return () => {
      set.delete(added);
    };
  }

  /** Follow the call events of the device's realtime stream, until the returned
   * function is called (`close` stops them all). */
  follow(source: CallEventSource): () => void {
    const handler = (event: Event) => this.handleEvent(event);
    const stop = "listen" in source ? source.listen({ event: handler }) : source.onEvent(handler);
    this.stops.push(stop);
    return stop;
  }

  get phase(): CallPhase {
    return this.currentPhase;
  }

  /** The call this device is in (or placing). */
  get call(): Call | undefined {
    return this.current;
  }

  /** Calls ringing for this user now, oldest first. */
  get ringing(): Call[] {
    return [...this.incoming.values()];
  }

  /** This device's camera and microphone while in a call. */
  get localStream(): MediaStream | undefined {
    return this.stream;
  }

  /**
   * Restart ICE on every link this device offers on (each joined later than the other
   * device): new ICE credentials, fresh ICE servers, a new offer on the same connection.
   * For when the network changed (a `navigator.connection` change, Wi-Fi to cellular);
   * links also restart by themselves when ICE fails or stays disconnected. The other
   * links restart from the other side.
   */
  async restartIce(): Promise<void> {
    await Promise.all([...this.links.values()].map((link) => link.restart()));
  }

  /** The other devices this device has a link to, and how each is doing. */
  get peers(): Array<CallPeer & { state: PeerState }> {
    return [...this.links.values()].map((link) => ({ ...link.peer, state: link.state }));
  }

  /**
   * Call the other members of `conversation` (`apps/{app}/conversations/{c}`), with
   * video or not: the camera and microphone first (their refusal is thrown), then
   * StartCall. Answers the call (RINGING; ENDED at once if everyone rung was busy).
   * Refused while this device is in a call; CALL_IN_PROGRESS when the conversation has
   * one already (`accept` it instead).
   */
  async start(conversation: string, options: { video?: boolean; inviteeIds?: string[] } = {}): Promise<Call> {
    const video = options.video ?? false;
    this.beginJoining();
    try {
      await this.openMedia(video);
      const response = await this.options.client.calls.startCall({
        parent: conversation,
        media: video ? Call_Media.VIDEO : Call_Media.AUDIO,
        deviceId: this.deviceId,
        requestId: globalThis.crypto.randomUUID().replaceAll("-", ""),
        inviteeIds: options.inviteeIds ?? [],
      });
      const call = response.call;
      if (!call) throw new Error("StartCall answered no call");
      this.joined(call, response.iceServers, false);
      return call;
    } catch (error) {
      this.abandon();
      throw error;
    }
  }

  /**
   * Answer a ringing call (or join an active one, or join again from this device after
   * a reload) on this device: the camera and microphone first, then AcceptCall, then an
   * offer to each device in the call. Answers the call.
   */
  async accept(call: Call | string): Promise<Call> {
    const name = typeof call === "string" ? call : call.name;
    const known = typeof call === "string" ? this.incoming.get(name) : call;
    this.beginJoining(name);
    try {
      await this.openMedia(known ? known.media === Call_Media.VIDEO : true);
      const response = await this.options.client.calls.acceptCall({ name, deviceId: this.deviceId });
      const accepted = response.call;
      if (!accepted) throw new Error("AcceptCall answered no call");
      this.incoming.delete(name);
      this.joined(accepted, response.iceServers, true);
      return accepted;
    } catch (error) {
      const ended = this.endedEarly.get(name);
      this.abandon();
      const ringing = this.incoming.get(name);
      if (ringing && (ended || errorReason(error) === "CALL_ENDED")) {
        this.incoming.delete(name);
        this.emit("ringEnded", ended ?? ringing);
        this.updatePhase();
      }
      throw error;
    }
  }

  /** Decline a ringing call (`busy`: because of another call). Answers the call. */
  async decline(call: Call | string, options: { busy?: boolean } = {}): Promise<Call | undefined> {
    const name = typeof call === "string" ? call : call.name;
    const response = await this.options.client.calls.declineCall({ name, busy: options.busy ?? false });
    const ringing = this.incoming.get(name);
    if (ringing) {
      this.incoming.delete(name);
      this.emit("ringEnded", response.call ?? ringing);
      this.updatePhase();
    }
    return response.call;
  }

  /** Hang up: this device leaves the call (ending it when nobody else is left). */
  async leave(): Promise<void> {
    const call = this.current;
    if (!call) return;
    this.teardown();
    try {
      const response = await this.options.client.calls.leaveCall({ name: call.name });
      this.finished(response.call ?? call);
    } catch (error) {
      this.finished(call);
      if (errorReason(error) !== "CALL_ENDED") throw error;
    }
  }

  /** Leave any call, and stop following the stream. */
  close(): void {
    if (this.current) void this.leave().catch(() => undefined);
    for (const stop of this.stops.splice(0)) stop();
  }

  // ---- the stream -----------------------------------------------------------------

  private handleEvent(event: Event): void {
    const { payload } = event;
    switch (payload.case) {
      case "callStarted":
      case "callUpdated":
      case "callEnded":
        this.callChanged(payload.value);
        break;
      case "callSignal":
        this.signalled(payload.value);
        break;
      default:
        break;
    }
  }

  private isMe(peer: CallPeer): boolean {
    return peer.userId === this.userId && peer.deviceId === this.deviceId;
  }

  private callChanged(call: Call): void {
    const me = call.participants.find((participant) => participant.userId === this.userId);
    const inIt = me?.state === Participant_State.JOINED && me.deviceId === this.deviceId;
    if (this.joining && call.state === Call_State.ENDED) this.endedEarly.set(call.name, call);
    if (this.current?.name === call.name) {
      // The stream may lag behind StartCall's or AcceptCall's answer: what it says
      // before it shows this device in the call is older than what we know.
      if (!this.synced && !inIt && call.state !== Call_State.ENDED) return;
      this.synced ||= inIt;
      const before = this.current;
      this.current = call;
      this.emit("call", call);
      if (participantsChanged(before, call)) this.emit("participants", call.participants, call);
      if (call.state === Call_State.ENDED || !inIt) {
        this.teardown();
        this.finished(call);
        return;
      }
      // A device that is no longer in the call: its link goes.
      for (const link of [...this.links.values()]) {
        const participant = call.participants.find((p) => p.userId === link.peer.userId);
        if (participant?.state !== Participant_State.JOINED || participant.deviceId !== link.peer.deviceId) {
          this.drop(link);
        }
      }
      this.updatePhase();
      return;
    }
    if (this.joining && call.name === this.joiningName) return; // being answered here
    const rung = me?.state === Participant_State.RINGING && call.state !== Call_State.ENDED;
    if (this.incoming.has(call.name)) {
      if (rung) {
        this.incoming.set(call.name, call);
        this.emit("call", call);
      } else {
        this.incoming.delete(call.name);
        this.emit("ringEnded", call);
        this.updatePhase();
      }
    } else if (rung && call.callerId !== this.userId) {
      this.incoming.set(call.name, call);
      this.emit("ringing", call);
      this.updatePhase();
    }
  }

  private signalled(signal: Signal): void {
    if (signal.toDeviceId !== this.deviceId || signal.toUserId !== this.userId) return;
    if (this.joining && (!this.current || this.current.name !== signal.call)) {
      if (this.early.length < MAX_EARLY) this.early.push(signal); // StartCall or AcceptCall under way
      return;
    }
    if (!this.current || signal.call !== this.current.name || signal.body.case === undefined) return;
    const peer = { userId: signal.fromUserId, deviceId: signal.fromDeviceId };
    const body = signal.body as SignalBody;
    const id = key(peer);
    let link = this.links.get(id);
    if (body.case === "description" && body.value.type === SessionDescription_Type.OFFER) {
      if (!link || !link.acceptsOffer(body.value.sdp)) {
        if (link) this.drop(link, false); // a new connection of that device
        link = this.link(peer, "answerer");
      }
    }
    if (!link) {
      // A candidate before the offer it belongs to: kept for the link the offer makes.
      const kept = this.orphans.get(id) ?? [];
      if (body.case === "candidate" && kept.length < 256) kept.push(body);
      this.orphans.set(id, kept);
      return;
    }
    void link.receive(body);
  }

  // ---- links ------------------------------------------------------------------------

  private link(peer: CallPeer, role: "offerer" | "answerer"): PeerLink {
    const call = this.current!;
    const create = this.options.createPeerConnection ?? ((config: RTCConfiguration) => new RTCPeerConnection(config));
    const link: PeerLink = new PeerLink({
      peer,
      role,
      connection: create({ iceServers: this.iceServers }),
      localStream: this.stream,
      video: call.media === Call_Media.VIDEO,
      restartAfterMs: this.options.restartAfterMs,
      send: async (body) => {
        try {
          await this.options.client.calls.sendSignal({
            call: call.name,
            deviceId: this.deviceId,
            toUserId: peer.userId,
            toDeviceId: peer.deviceId,
            ...(body.case === "description" ? { description: body.value } : { candidate: body.value }),
          });
        } catch (error) {
          // The peer left (or the call ended) before the event saying so arrived here:
          // the link is about to go, and nothing is lost.
          if (!SIGNAL_TOO_LATE.has(errorReason(error))) throw error;
        }
      },
      iceServers: async () => {
        const response = await this.options.client.calls.getIceServers({ call: call.name, deviceId: this.deviceId });
        return response.iceServers.length ? rtcIceServers(response.iceServers) : undefined;
      },
      onState: (state) => {
        if (this.links.get(key(peer)) !== link) return;
        if (state === "connected") this.emit("connected", peer);
        else if (state === "reconnecting") this.emit("reconnecting", peer);
        this.updatePhase();
      },
      onTrack: (stream) => this.emit("track", peer, stream),
      onError: (error) => this.emit("error", error),
    });
    this.links.set(key(peer), link);
    for (const body of this.orphans.get(key(peer)) ?? []) void link.receive(body);
    this.orphans.delete(key(peer));
    return link;
  }

  private drop(link: PeerLink, tell = true): void {
    this.links.delete(key(link.peer));
    link.close();
    if (tell) this.emit("peerClosed", link.peer);
  }

  // ---- joining and leaving ----------------------------------------------------------

  private beginJoining(name = ""): void {
    if (this.current || this.joining) throw new Error("this device is in a call already: leave it first");
    this.joining = true;
    this.joiningName = name;
    this.early = [];
    this.endedEarly.clear();
  }

  private async openMedia(video: boolean): Promise<void> {
    const getUserMedia = this.options.getUserMedia ??
      ((constraints: MediaStreamConstraints) => navigator.mediaDevices.getUserMedia(constraints));
    const constraints = this.options.constraints?.(video) ?? { audio: true, video };
    this.stream = await getUserMedia(constraints);
    this.emit("localStream", this.stream);
  }

  /**
   * In the call (StartCall or AcceptCall answered): offers to the devices in it when
   * this device joins one under way, then the signals held meanwhile.
   */
  private joined(answered: Call, servers: readonly IceServer[], offer: boolean): void {
    const call = this.endedEarly.get(answered.name) ?? answered;
    this.current = call;
    this.joining = false;
    this.synced = false;
    this.endedEarly.clear();
    this.iceServers = rtcIceServers(servers);
    this.emit("call", call);
    this.updatePhase();
    const early = this.early;
    this.early = [];
    if (call.state === Call_State.ENDED) {
      this.teardown();
      this.finished(call);
      return;
    }
    if (offer) {
      for (const participant of call.participants) {
        const peer = { userId: participant.userId, deviceId: participant.deviceId };
        if (participant.state !== Participant_State.JOINED || this.isMe(peer) || this.links.has(key(peer))) continue;
        this.link(peer, "offerer");
      }
    }
    for (const signal of early) this.signalled(signal);
  }

  /** StartCall or AcceptCall failed: the camera goes off again. */
  private abandon(): void {
    this.joining = false;
    this.early = [];
    this.endedEarly.clear();
    this.stopMedia();
    this.updatePhase();
  }

  private stopMedia(): void {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = undefined;
  }

  /** Every link closed, the camera off. */
  private teardown(): void {
    for (const link of [...this.links.values()]) this.drop(link);
    this.orphans.clear();
    this.stopMedia();
  }

  private finished(call: Call): void {
    if (!this.current || this.current.name !== call.name) return;
    this.current = undefined;
    this.setPhase("ended");
    this.emit("ended", call);
  }

  private updatePhase(): void {
    const call = this.current;
    if (!call) {
      if (this.incoming.size) this.setPhase("ringing");
      else if (this.currentPhase === "ringing") this.setPhase("idle");
      return;
    }
    const states = [...this.links.values()].map((link) => link.state);
    if (states.includes("reconnecting")) this.setPhase("reconnecting");
    else if (states.length && states.every((state) => state === "connected")) this.setPhase("connected");
    else if (call.state === Call_State.RINGING && !states.length) this.setPhase("calling");
    else if (states.some((state) => state === "connected")) this.setPhase("connected");
    else this.setPhase("connecting");
  }

  private setPhase(phase: CallPhase): void {
    if (phase === this.currentPhase) return;
    this.currentPhase = phase;
    this.emit("state", phase);
  }

  private emit<K extends keyof CallsEvents>(event: K, ...args: Parameters<CallsEvents[K]>): void {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        (handler as unknown as (...values: typeof args) => void)(...args);
      } catch (error) {
        if (event !== "error") this.emit("error", error);
      }
    }
  }
}

function participantsChanged(before: Call, after: Call): boolean {
  if (before.participants.length !== after.participants.length) return true;
  return before.participants.some((participant, index) => {
    const other = after.participants[index];
    return participant.userId !== other.userId || participant.state !== other.state || participant.deviceId !== other.deviceId;
  });
}
