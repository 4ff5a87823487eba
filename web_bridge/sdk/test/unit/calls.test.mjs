// Calls without a browser: PeerLink (offer/answer, candidates kept until their
// description, ICE restarts by the offering side) over a stand-in RTCPeerConnection, and
// Calls between devices through a small in-memory CallsService that keeps CAAS's rules
// (the caller joined at once, the rung answer or decline, a two-party call ends when one
// leaves; signals reach only the addressed device's stream, in order).
// tests/browser/test_calls_page.py runs the real thing: two Chromiums, WebRTC, Envoy.
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { Call_Media, Call_Outcome, Call_State, Calls, Participant_State, PeerLink, iceUfrags,
  sdpSessionId } from "../../dist/index.js";
import { CallSchema, SessionDescription_Type } from "../../dist/gen/caas/calls/v1/resources_pb.js";
import { ErrorInfoSchema } from "../../dist/gen/google/rpc/error_details_pb.js";

const APP = "apps/demo";
const CONV = `${APP}/conversations/c1`;
const OFFER = SessionDescription_Type.OFFER;
const ANSWER = SessionDescription_Type.ANSWER;
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Polls a condition for up to 5 s. */
async function until(check, what = "the condition") {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

// ---- a stand-in RTCPeerConnection ---------------------------------------------------

let sessions = 4000;

/** Enough of RTCPeerConnection for the signaling: descriptions with an `o=` session id,
 * an ICE ufrag per generation and the local streams' ids; one host candidate per
 * generation, then the end; "connected" once both descriptions are set and a candidate
 * of the current remote generation was added. Tests move ICE states by hand (`ice`). */
class FakeConnection {
  constructor(config) {
    this.config = config;
    this.signalingState = "stable";
    this.iceConnectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.session = String(sessions++);
    this.version = 0;
    this.generation = 0;
    this.streams = [];
    this.transceivers = [];
    this.added = []; // candidates given by the peer
    this.closed = false;
    this.restarts = 0;
    this.onicecandidate = this.oniceconnectionstatechange = this.ontrack = this.onnegotiationneeded = null;
    FakeConnection.all.push(this);
  }

  get ufrag() {
    return `u${this.session}g${this.generation}`;
  }

  getConfiguration() { return this.config; }
  setConfiguration(config) { this.config = config; }

  addTrack(track, stream) {
    if (!this.streams.includes(stream.id)) this.streams.push(stream.id);
    this.transceivers.push({ kind: track.kind, direction: "sendrecv" });
    this.negotiationNeeded();
  }

  addTransceiver(kind, init) {
    this.transceivers.push({ kind, ...init });
    this.negotiationNeeded();
  }

  restartIce() {
    this.restarts += 1;
    this.generation += 1;
    this.negotiationNeeded();
  }

  negotiationNeeded() {
    if (this.queued) return;
    this.queued = true;
    setTimeout(() => {
      this.queued = false;
      if (!this.closed && this.signalingState === "stable") this.onnegotiationneeded?.();
    }, 0);
  }

  sdp(type) {
    this.version += 1;
    return [`v=0`, `o=- ${this.session} ${this.version} IN IP4 127.0.0.1`, `a=type:${type}`,
      `a=ice-ufrag:${this.ufrag}`, ...this.streams.map((id) => `a=msid:${id} track`)].join("\r\n") + "\r\n";
  }

  async setLocalDescription() {
    await tick();
    if (this.signalingState === "stable") {
      this.localDescription = { type: "offer", sdp: this.sdp("offer") };
      this.signalingState = "have-local-offer";
    } else if (this.signalingState === "have-remote-offer") {
      this.localDescription = { type: "answer", sdp: this.sdp("answer") };
      this.signalingState = "stable";
    } else {
      throw new Error(`InvalidStateError: setLocalDescription in ${this.signalingState}`);
    }
    const ufrag = this.ufrag;
    setTimeout(() => {
      if (this.closed) return;
      this.onicecandidate?.({ candidate: { candidate: `candidate:1 1 udp 2122260223 10.0.0.${this.session % 250} 5000${this.generation} typ host`, sdpMid: "0", sdpMLineIndex: 0, usernameFragment: ufrag } });
      this.onicecandidate?.({ candidate: null });
    }, 0);
    this.maybeConnect();
  }

  async setRemoteDescription(description) {
    await tick();
    if (description.type === "offer" && this.signalingState === "stable") this.signalingState = "have-remote-offer";
    else if (description.type === "answer" && this.signalingState === "have-local-offer") this.signalingState = "stable";
    else throw new Error(`InvalidStateError: remote ${description.type} in ${this.signalingState}`);
    const fresh = !this.remoteDescription;
    this.remoteDescription = description;
    if (fresh) {
      for (const [, id] of description.sdp.matchAll(/^a=msid:(\S+)/gm)) {
        this.ontrack?.({ track: { kind: "video" }, streams: [{ id }] });
      }
    }
    this.maybeConnect();
  }

  async addIceCandidate(init) {
    if (!this.remoteDescription) throw new Error("InvalidStateError: no remote description");
    if (init.candidate === "") return; // the end of candidates
    if (init.usernameFragment && !iceUfrags(this.remoteDescription.sdp).has(init.usernameFragment)) {
      throw new Error(`OperationError: unknown ufrag ${init.usernameFragment}`);
    }
    this.added.push(init);
    this.maybeConnect();
  }

  maybeConnect() {
    if (this.closed || this.signalingState !== "stable" || !this.remoteDescription) return;
    const current = [...iceUfrags(this.remoteDescription.sdp)][0];
    if (!this.added.some((init) => init.usernameFragment === current)) return;
    if (this.iceConnectionState !== "connected") this.ice("connected");
  }

  ice(state) {
    this.iceConnectionState = state;
    this.oniceconnectionstatechange?.();
  }

  close() {
    this.closed = true;
    this.signalingState = "closed";
    this.iceConnectionState = "closed";
  }
}
FakeConnection.all = [];

function fakeStream(id, kinds = ["audio", "video"]) {
  const tracks = kinds.map((kind) => ({ kind, stopped: false, stop() { this.stopped = true; } }));
  return { id, getTracks: () => tracks, tracks };
}

// ---- PeerLink -----------------------------------------------------------------------

/** Two links wired to each other directly: what one sends, the other receives. */
function linkedPair({ restartAfterMs = 20 } = {}) {
  const sent = { offerer: [], answerer: [] };
  const links = {};
  const make = (role, other, peer) => {
    const connection = new FakeConnection({ iceServers: [] });
    const states = [];
    const link = new PeerLink({
      peer, role, connection, restartAfterMs,
      localStream: fakeStream(`${role}-stream`),
      send: async (body) => {
        sent[role].push(body);
        await tick();
        if (links[other].blocked) return; // lost on the way
        void links[other].link.receive(body);
      },
      onState: (state) => states.push(state),
      onTrack: (stream) => links[role].tracks.push(stream.id),
    });
    links[role] = { link, connection, states, tracks: [], blocked: false };
  };
  make("answerer", "offerer", { userId: "bob", deviceId: "b1" });
  make("offerer", "answerer", { userId: "alice", deviceId: "a1" });
  return { sent, links };
}

test("SDP helpers read the session id and the ICE ufrags", () => {
  const sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\na=ice-ufrag:abcd\r\nm=video\r\na=ice-ufrag:abcd\r\n";
  assert.equal(sdpSessionId(sdp), "4611731400430051336");
  assert.deepEqual([...iceUfrags(sdp)], ["abcd"]);
  assert.equal(sdpSessionId(""), "");
});

test("the offerer offers once its tracks are in; the answerer answers and never offers; both connect", async () => {
  const { sent, links } = linkedPair();
  await until(() => links.offerer.link.state === "connected" && links.answerer.link.state === "connected", "connected");
  const descriptions = (role) => sent[role].filter((body) => body.case === "description").map((body) => body.value.type);
  assert.deepEqual(descriptions("offerer"), [OFFER]);
  assert.deepEqual(descriptions("answerer"), [ANSWER]);
  // Each side sends its description before its candidates, and ends them with an empty one.
  for (const role of ["offerer", "answerer"]) {
    assert.equal(sent[role][0].case, "description");
    assert.equal(sent[role].at(-1).value.candidate, "");
  }
  assert.deepEqual(links.answerer.tracks, ["offerer-stream"]);
  assert.deepEqual(links.offerer.tracks, ["answerer-stream"]);
  // The answerer's tracks went onto the offer's transceivers: nothing to renegotiate.
  assert.equal(links.answerer.connection.transceivers.length, 2);
  assert.deepEqual(links.offerer.states, ["connected"]);
});

test("candidates that arrive before their offer are kept, then added after it", async () => {
  const connection = new FakeConnection({});
  const answers = [];
  const link = new PeerLink({
    peer: { userId: "alice", deviceId: "a1" }, role: "answerer", connection,
    send: async (body) => { answers.push(body); },
  });
  const remoteSdp = "v=0\r\no=- 77 1 IN IP4 0.0.0.0\r\na=ice-ufrag:r0\r\n";
  void link.receive({ case: "candidate", value: { candidate: "candidate:9 1 udp 1 10.1.1.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "r0" } });
  void link.receive({ case: "candidate", value: { candidate: "", sdpMid: "", sdpMLineIndex: 0, usernameFragment: "" } });
  assert.equal(connection.added.length, 0);
  await link.receive({ case: "description", value: { type: OFFER, sdp: remoteSdp } });
  assert.deepEqual(connection.added.map((init) => init.candidate), ["candidate:9 1 udp 1 10.1.1.1 9 typ host"]);
  assert.equal(connection.added[0].sdpMid, "0");
  assert.equal(answers[0]?.case, "description");
  assert.equal(answers[0].value.type, ANSWER);
  assert.ok(link.acceptsOffer(remoteSdp.replace(" 1 IN", " 2 IN"))); // the same connection, renegotiating
  assert.ok(!link.acceptsOffer("o=- 78 1 IN IP4 0.0.0.0\r\n")); // another connection of that device
  link.close();
});

test("ICE failing makes the offerer restart with a new offer, and the answerer answer it on the same link", async () => {
  const { sent, links } = linkedPair();
  await until(() => links.offerer.link.state === "connected" && links.answerer.link.state === "connected", "connected");
  const offersBefore = sent.offerer.filter((body) => body.case === "description").length;

  // The answerer's side fails first: it waits for the offerer (it never offers).
  links.answerer.connection.ice("failed");
  assert.equal(links.answerer.link.state, "reconnecting");
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(sent.answerer.filter((body) => body.case === "description" && body.value.type === OFFER).length, 0);

  links.offerer.connection.ice("failed");
  await until(() => links.offerer.connection.restarts === 1, "the restart");
  await until(() => links.offerer.link.state === "connected" && links.answerer.connection.added.some(
    (init) => init.usernameFragment === links.offerer.connection.ufrag), "reconnected");
  const offers = sent.offerer.filter((body) => body.case === "description");
  assert.equal(offers.length, offersBefore + 1);
  assert.match(offers.at(-1).value.sdp, /a=ice-ufrag:u\d+g1/); // new ICE credentials
  assert.equal(sdpSessionId(offers.at(-1).value.sdp), links.offerer.connection.session);
  assert.equal(links.offerer.states.join(","), "connected,reconnecting,connected");
  assert.equal(FakeConnection.all.filter((c) => c === links.answerer.connection).length, 1); // same link
});

test("ICE disconnected restarts only if it stays so for restartAfterMs", async () => {
  const { links } = linkedPair({ restartAfterMs: 30 });
  await until(() => links.offerer.link.state === "connected", "connected");
  links.offerer.connection.ice("disconnected");
  assert.equal(links.offerer.link.state, "reconnecting");
  links.offerer.connection.ice("connected"); // back by itself
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(links.offerer.connection.restarts, 0);
  links.offerer.connection.ice("disconnected");
  await until(() => links.offerer.connection.restarts === 1, "the restart");
});

test("a candidate of a newer ICE generation waits for the description that brings it", async () => {
  const connection = new FakeConnection({});
  const link = new PeerLink({ peer: { userId: "a", deviceId: "d" }, role: "answerer", connection, send: async () => {} });
  const sdp = (ufrag, version) => `v=0\r\no=- 5 ${version} IN IP4 0.0.0.0\r\na=ice-ufrag:${ufrag}\r\n`;
  await link.receive({ case: "description", value: { type: OFFER, sdp: sdp("g0", 1) } });
  await link.receive({ case: "candidate", value: { candidate: "candidate:new", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "g1" } });
  assert.deepEqual(connection.added, []);
  await link.receive({ case: "description", value: { type: OFFER, sdp: sdp("g1", 2) } });
  assert.deepEqual(connection.added.map((init) => init.candidate), ["candidate:new"]);
});

// ---- Calls through a stand-in CallsService ----------------------------------------------

function refusal(code, reason) {
  return new ConnectError(reason, code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain: "caas.dev" } }]);
}

/** The server: calls, their rules, and each device's stream (events to every member's
 * devices, a signal to its device only), delivered in order. */
class FakeServer {
  constructor(members) {
    this.members = members;
    this.calls = new Map();
    this.devices = new Set(); // { user, deviceId, handler }
    this.signals = [];
    this.count = 0;
  }

  deliver(filter, payload) {
    for (const device of this.devices) {
      if (!filter(device)) continue;
      const event = { name: `e${this.count++}`, payload };
      setTimeout(() => device.handler(event), 0); // in order: timers run FIFO
    }
  }

  publish(kind, call) {
    const value = create(CallSchema, call);
    this.deliver((device) => this.members.includes(device.user), { case: kind, value });
    return create(CallSchema, call);
  }

  stream(user, deviceId) {
    return {
      listen: ({ event }) => {
        const device = { user, deviceId, handler: event };
        this.devices.add(device);
        return () => this.devices.delete(device);
      },
    };
  }

  settle(call) {
    const joined = call.participants.filter((p) => p.state === Participant_State.JOINED);
    const ringing = call.participants.filter((p) => p.state === Participant_State.RINGING);
    const answered = call.state !== Call_State.RINGING;
    let outcome;
    if (!answered && !ringing.length) outcome = Call_Outcome.DECLINED;
    if (!answered && !joined.length) outcome = Call_Outcome.CANCELED;
    if (answered && (!joined.length || (joined.length === 1 && !ringing.length))) outcome = Call_Outcome.COMPLETED;
    if (outcome === undefined) return "callUpdated";
    call.state = Call_State.ENDED;
    call.outcome = outcome;
    for (const p of call.participants) {
      if (p.state === Participant_State.JOINED) p.state = Participant_State.LEFT;
      if (p.state === Participant_State.RINGING) p.state = Participant_State.MISSED;
    }
    return "callEnded";
  }

  client(user) {
    const me = (call) => call.participants.find((p) => p.userId === user);
    const found = (name) => {
      const call = this.calls.get(name);
      if (!call) throw refusal(Code.NotFound, "RESOURCE_NOT_FOUND");
      return call;
    };
    return {
      calls: {
        startCall: async (request) => {
          await tick();
          const name = `${request.parent}/calls/k${this.calls.size + 1}`;
          const call = {
            name, media: request.media, state: Call_State.RINGING, callerId: user,
            participants: [{ userId: user, state: Participant_State.JOINED, deviceId: request.deviceId, invited: true },
              ...this.members.filter((m) => m !== user).map((userId) => ({ userId, state: Participant_State.RINGING, deviceId: "", invited: true }))],
          };
          this.calls.set(name, call);
          return { call: this.publish("callStarted", call), created: true, iceServers: [{ urls: ["stun:stun.example:3478"], username: "", credential: "" }] };
        },
        acceptCall: async (request) => {
          await tick();
          const call = found(request.name);
          if (call.state === Call_State.ENDED) throw refusal(Code.FailedPrecondition, "CALL_ENDED");
          Object.assign(me(call), { state: Participant_State.JOINED, deviceId: request.deviceId });
          call.state = Call_State.ACTIVE;
          return { call: this.publish("callUpdated", call), iceServers: [] };
        },
        declineCall: async (request) => {
          await tick();
          const call = found(request.name);
          me(call).state = request.busy ? Participant_State.BUSY : Participant_State.DECLINED;
          return { call: this.publish(this.settle(call), call) };
        },
        leaveCall: async (request) => {
          await tick();
          const call = found(request.name);
          if (call.state === Call_State.ENDED) throw refusal(Code.FailedPrecondition, "CALL_ENDED");
          me(call).state = Participant_State.LEFT;
          return { call: this.publish(this.settle(call), call) };
        },
        sendSignal: async (request) => {
          await tick();
          const call = found(request.call);
          const inCall = (userId, deviceId) => call.participants.some(
            (p) => p.userId === userId && p.deviceId === deviceId && p.state === Participant_State.JOINED);
          if (call.state === Call_State.ENDED) throw refusal(Code.FailedPrecondition, "CALL_ENDED");
          if (!inCall(user, request.deviceId) || !inCall(request.toUserId, request.toDeviceId)) {
            throw refusal(Code.FailedPrecondition, "CALL_NOT_JOINED");
          }
          const body = request.description ? { case: "description", value: request.description }
            : { case: "candidate", value: request.candidate };
          const signal = { call: call.name, fromUserId: user, fromDeviceId: request.deviceId,
            toUserId: request.toUserId, toDeviceId: request.toDeviceId, body };
          this.signals.push(signal);
          this.deliver((device) => device.user === request.toUserId && device.deviceId === request.toDeviceId,
            { case: "callSignal", value: signal });
          return { signal };
        },
        getIceServers: async () => ({ iceServers: [] }),
      },
    };
  }
}

/** A device: Calls on the fake server, with what it emitted. */
function device(server, user, deviceId) {
  const emitted = [];
  const connections = [];
  const calls = new Calls({
    client: server.client(user), user: `${APP}/users/${user}`, deviceId,
    events: server.stream(user, deviceId),
    getUserMedia: async (constraints) => {
      emitted.push(["media", JSON.stringify(constraints)]);
      return fakeStream(`${user}-${deviceId}-camera`, constraints.video ? ["audio", "video"] : ["audio"]);
    },
    createPeerConnection: (config) => {
      const connection = new FakeConnection(config);
      connections.push(connection);
      return connection;
    },
    restartAfterMs: 20,
  });
  for (const name of ["state", "ringing", "ringEnded", "connected", "reconnecting", "track", "peerClosed", "ended", "error"]) {
    calls.on(name, (...args) => emitted.push([name, ...args]));
  }
  const names = () => emitted.map(([name]) => name);
  return { calls, emitted, names, connections };
}

test("a video call: ringing, answered, connected both ways, hung up, ended on both sides", async () => {
  const server = new FakeServer(["alice", "bob"]);
  const alice = device(server, "alice", "laptop");
  const bob = device(server, "bob", "phone");
  const bobTablet = device(server, "bob", "tablet"); // another device of bob's, that rings too

  const started = await alice.calls.start(CONV, { video: true });
  assert.equal(started.state, Call_State.RINGING);
  assert.equal(alice.calls.phase, "calling");
  assert.deepEqual(alice.emitted[0], ["media", JSON.stringify({ audio: true, video: true })]);
  await until(() => bob.names().includes("ringing") && bobTablet.names().includes("ringing"), "the ring");
  assert.equal(bob.calls.phase, "ringing");
  assert.deepEqual(bob.calls.ringing.map((call) => call.name), [started.name]);
  assert.ok(!alice.names().includes("ringing")); // the caller is not rung

  const accepted = await bob.calls.accept(bob.calls.ringing[0]);
  assert.equal(accepted.state, Call_State.ACTIVE);
  assert.ok(!bob.names().includes("ringEnded"));
  await until(() => bobTablet.names().includes("ringEnded"), "the tablet to stop ringing");
  await until(() => alice.calls.phase === "connected" && bob.calls.phase === "connected", "both connected");

  // The joiner (bob) sent the only offer; alice only answered.
  const descriptions = server.signals.filter((s) => s.body.case === "description")
    .map((s) => `${s.fromUserId}:${s.body.value.type === OFFER ? "offer" : "answer"}`);
  assert.deepEqual(descriptions, ["bob:offer", "alice:answer"]);
  assert.ok(server.signals.every((s) => s.toDeviceId !== "tablet"));
  assert.deepEqual(alice.connections[0].config.iceServers, [{ urls: ["stun:stun.example:3478"] }]);
  const track = alice.emitted.find(([name]) => name === "track");
  assert.deepEqual(track[1], { userId: "bob", deviceId: "phone" });
  assert.equal(track[2].id, "bob-phone-camera");
  assert.deepEqual(bob.emitted.find(([name]) => name === "connected")[1], { userId: "alice", deviceId: "laptop" });
  assert.deepEqual(bob.calls.peers, [{ userId: "alice", deviceId: "laptop", state: "connected" }]);

  await alice.calls.leave();
  assert.equal(alice.calls.phase, "ended");
  await until(() => bob.calls.phase === "ended", "bob's end");
  const ended = bob.emitted.find(([name]) => name === "ended")[1];
  assert.equal(ended.state, Call_State.ENDED);
  assert.equal(ended.outcome, Call_Outcome.COMPLETED);
  assert.equal(alice.emitted.filter(([name]) => name === "ended").length, 1);
  for (const side of [alice, bob]) {
    assert.ok(side.connections.every((connection) => connection.closed));
    assert.equal(side.calls.localStream, undefined);
    assert.equal(side.calls.call, undefined);
    assert.deepEqual(side.emitted.filter(([name]) => name === "error"), []);
  }
});

test("declining stops the ring here; a call declined by all ends for the caller", async () => {
  const server = new FakeServer(["alice", "bob"]);
  const alice = device(server, "alice", "a");
  const bob = device(server, "bob", "b");
  await alice.calls.start(CONV);
  assert.deepEqual(alice.emitted[0], ["media", JSON.stringify({ audio: true, video: false })]);
  await until(() => bob.calls.ringing.length === 1, "the ring");
  const declined = await bob.calls.decline(bob.calls.ringing[0]);
  assert.equal(declined.outcome, Call_Outcome.DECLINED);
  assert.ok(bob.names().includes("ringEnded"));
  assert.equal(bob.calls.phase, "idle");
  await until(() => alice.calls.phase === "ended", "the caller's end");
  assert.equal(alice.emitted.find(([name]) => name === "ended")[1].outcome, Call_Outcome.DECLINED);
  assert.ok(alice.calls.localStream === undefined);
});

test("a group call: the later joiner offers to each device in it; one leaving closes only its link", async () => {
  const server = new FakeServer(["alice", "bob", "carol"]);
  const alice = device(server, "alice", "a");
  const bob = device(server, "bob", "b");
  const carol = device(server, "carol", "c");
  await alice.calls.start(CONV, { video: true });
  await until(() => bob.calls.ringing.length && carol.calls.ringing.length, "the rings");
  await bob.calls.accept(bob.calls.ringing[0]);
  await until(() => bob.calls.phase === "connected", "bob connected");
  await carol.calls.accept(carol.calls.ringing[0]);
  await until(() => carol.calls.phase === "connected" && carol.calls.peers.length === 2, "carol connected to both");
  const offers = server.signals.filter((s) => s.body.case === "description" && s.body.value.type === OFFER)
    .map((s) => `${s.fromUserId}>${s.toUserId}`);
  assert.deepEqual(offers, ["bob>alice", "carol>alice", "carol>bob"]);

  await bob.calls.leave();
  await until(() => alice.names().includes("peerClosed") && carol.names().includes("peerClosed"), "bob's links closed");
  assert.deepEqual(alice.calls.peers.map((p) => p.userId), ["carol"]);
  assert.deepEqual(carol.calls.peers.map((p) => p.userId), ["alice"]);
  assert.equal(alice.calls.phase, "connected");
  assert.equal(bob.calls.phase, "ended");
  assert.equal(bob.emitted.find(([name]) => name === "ended")[1].state, Call_State.ACTIVE); // goes on without bob
});

test("an offer from a new connection of a device replaces its link; other devices' signals are not ours", async () => {
  const server = new FakeServer(["alice", "bob"]);
  const alice = device(server, "alice", "a");
  const bob = device(server, "bob", "b");
  const call = await alice.calls.start(CONV, { video: true });
  await until(() => bob.calls.ringing.length === 1, "the ring");
  await bob.calls.accept(call.name);
  await until(() => alice.calls.phase === "connected", "connected");
  assert.equal(alice.connections.length, 1);

  // Bob's page reloads and joins again from the same device: a new connection offers.
  for (const gone of [...server.devices].filter((d) => d.user === "bob")) server.devices.delete(gone);
  const again = device(server, "bob", "b");
  await again.calls.accept(call.name);
  await until(() => alice.connections.length === 2 && alice.connections[0].closed, "the old link replaced");
  await until(() => again.calls.phase === "connected" && alice.calls.peers[0].state === "connected", "reconnected");
  assert.ok(!alice.names().includes("ended"));

  // A signal addressed to another device of alice's is not this one's.
  const before = alice.connections.length;
  const stray = { call: call.name, fromUserId: "bob", fromDeviceId: "zz", toUserId: "alice", toDeviceId: "other",
    body: { case: "description", value: { type: OFFER, sdp: "o=- 1 1 IN IP4 0.0.0.0\r\n" } } };
  server.deliver((d) => d.user === "alice", { case: "callSignal", value: stray });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(alice.connections.length, before);
});

test("a stream that lags behind AcceptCall's answer does not take the device out of the call", async () => {
  const stream = { handler: undefined, listen({ event }) { this.handler = event; return () => {}; } };
  const connections = [];
  const calls = new Calls({
    user: `${APP}/users/bob`, deviceId: "b", events: stream,
    client: { calls: { acceptCall: async () => ({ call: active, iceServers: [] }), sendSignal: async () => ({}) } },
    getUserMedia: async () => fakeStream("cam", ["audio"]),
    createPeerConnection: (config) => { const c = new FakeConnection(config); connections.push(c); return c; },
  });
  const name = `${CONV}/calls/lag`;
  const ringing = create(CallSchema, { name, media: Call_Media.AUDIO, state: Call_State.RINGING, callerId: "alice",
    participants: [{ userId: "alice", state: Participant_State.JOINED, deviceId: "a" }, { userId: "bob", state: Participant_State.RINGING }] });
  const active = create(CallSchema, { ...ringing, state: Call_State.ACTIVE,
    participants: [{ userId: "alice", state: Participant_State.JOINED, deviceId: "a" }, { userId: "bob", state: Participant_State.JOINED, deviceId: "b" }] });
  stream.handler({ payload: { case: "callStarted", value: ringing } });
  assert.equal(calls.phase, "ringing");
  await calls.accept(name);
  assert.equal(connections.length, 1); // an offer to alice's device
  // An older event (someone else's change before bob answered) arrives now.
  stream.handler({ payload: { case: "callUpdated", value: ringing } });
  assert.equal(calls.phase, "connecting");
  assert.equal(calls.call.name, name);
  // The stream catches up (bob in the call), then the call ends.
  stream.handler({ payload: { case: "callUpdated", value: active } });
  const ended = create(CallSchema, { ...active, state: Call_State.ENDED, outcome: Call_Outcome.COMPLETED });
  stream.handler({ payload: { case: "callEnded", value: ended } });
  assert.equal(calls.phase, "ended");
  assert.ok(connections.every((connection) => connection.closed));
});
