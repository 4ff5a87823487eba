/** The server's refusals, in words a developer can act on. */
import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../../sdk/src/gen/google/rpc/error_details_pb.js";

const WORDS: Record<string, string> = {
  LOGIN_FAILED: "Wrong email or password.",
  MFA_REQUIRED: "Enter the 6-digit code of your authenticator app.",
  MFA_CODE_INVALID: "That code is wrong or was used already. Wait for the next one.",
  ACCOUNT_LOCKED: "Too many failed logins: the account is locked for a while.",
  ACCOUNT_SESSION_INVALID: "Your session has ended. Log in again.",
  ACCOUNT_TOKEN_INVALID: "This link is invalid, expired or used already. Ask for a new one.",
  EMAIL_NOT_VERIFIED: "Verify your email address first: open the link we emailed you.",
  PASSWORD_BREACHED: "This password appears in known data breaches. Choose another.",
  RATE_LIMITED: "Too many attempts. Wait a moment and try again.",
  NOT_AN_ORGANIZATION_MEMBER: "You are not a member of this organization.",
  ORGANIZATION_ROLE_REQUIRED: "Your role in this organization does not allow this.",
  MFA_REQUIRED_BY_ORGANIZATION:
    "This organization requires two-factor authentication: enable it under Security and log in again with a code.",
  API_KEY_SCOPE_MISSING: "Your role in this organization does not allow this.",
  APP_MISMATCH: "You have no access to this app.",
  RESOURCE_ALREADY_EXISTS: "That name is taken.",
  RESOURCE_NOT_FOUND: "Not found.",
  LAST_OWNER: "The organization would have no owner: make another member owner first.",
  INVITATION_EMAIL_MISMATCH: "This invitation was sent to another email address.",
  UNAVAILABLE: "The server is unavailable. Try again in a moment.",
  PAYMENT_METHOD_REQUIRED: "A paid plan needs a card on file: add one under Payment method first.",
  PLAN_NOT_AVAILABLE: "This plan is not offered to this organization.",
  PAYMENT_DECLINED: "The card was declined. Try another card.",
  PAYMENT_ACTION_REQUIRED: "Your bank asks you to confirm this payment.",
  BILLING_PROVIDER_UNAVAILABLE: "The payment provider did not answer. Try again in a moment.",
};

export function reasonOf(error: unknown): string {
  if (!(error instanceof ConnectError)) return "";
  return error.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
}

/** What went wrong, for a person: the reason in words, and each field's problem. */
export function describe(error: unknown): string {
  if (!(error instanceof ConnectError)) {
    return error instanceof Error ? error.message : "Something went wrong.";
  }
  const reason = reasonOf(error);
  const fields = error.findDetails(BadRequestSchema).flatMap((request) =>
    request.fieldViolations.map((v) => `${v.field}: ${v.description}`),
  );
  const retry = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  let text = WORDS[reason] ?? (error.rawMessage || "Something went wrong.");
  if (fields.length) text += ` (${fields.join("; ")})`;
  if (retry && reason !== "UNAVAILABLE") {
    const minutes = Math.ceil(Number(retry.seconds) / 60);
    text += ` Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
  }
  if (error.code === Code.Unavailable && !reason) text = WORDS.UNAVAILABLE;
  return text;
}
