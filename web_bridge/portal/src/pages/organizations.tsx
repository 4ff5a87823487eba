/** Organizations: the developer's list, one organization's apps, members and
 * invitations, and accepting an invitation. */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";

import { api, idOf } from "../api.js";
import type { App } from "../../../sdk/src/gen/caas/apps/v1/resources_pb.js";
import {
  OrganizationMember_Role as Role,
  type Invitation,
  type OrganizationMember,
} from "../../../sdk/src/gen/caas/organizations/v1/resources_pb.js";
import { Link, navigate, useLocation } from "../router.js";
import { useSession } from "../session.js";
import { Alert, DataTable, Field, Form, Loading, Select, Shell, tableFeatureSet, when } from "../ui.js";

export const ROLES: [string, string][] = [
  [String(Role.OWNER), "Owner"],
  [String(Role.ADMIN), "Admin"],
  [String(Role.DEVELOPER), "Developer"],
  [String(Role.VIEWER), "Viewer"],
  [String(Role.BILLING), "Billing"],
];
const roleName = (role: Role) => ROLES.find(([value]) => value === String(role))?.[1] ?? "";

export function HomePage() {
  const queries = useQueryClient();
  const organizations = useQuery({
    queryKey: ["organizations"],
    queryFn: () => api.organizations.listOrganizations({}),
  });
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  return (
    <Shell>
      <h1>Organizations</h1>
      {organizations.isPending && <Loading what="your organizations" />}
      <Alert error={organizations.error} />
      {organizations.data && (
        organizations.data.organizations.length ? (
          <ul className="tiles">
            {organizations.data.organizations.map((o) => (
              <li key={o.name}>
                <Link to={`/${o.name}`}>{o.displayName}</Link>
                <small>{o.name}{o.requireMfa ? " · two-factor required" : ""}</small>
              </li>
            ))}
          </ul>
        ) : (
          <p className="empty">You belong to no organization yet: create one, or open an invitation's link.</p>
        )
      )}
      <section className="card" aria-labelledby="new-org">
        <h2 id="new-org">New organization</h2>
        <Form label="New organization" submit="Create organization" action={async () => {
          const made = await api.organizations.createOrganization({
            organizationId: id,
            organization: { displayName: name },
          });
          await queries.invalidateQueries({ queryKey: ["organizations"] });
          navigate(`/${made.organization!.name}`);
        }}>
          <Field label="Name" required maxLength={100} value={name}
                 onChange={(e) => setName(e.target.value)} />
          <Field label="Id" required pattern="[a-z][a-z0-9-]{1,38}[a-z0-9]" value={id}
                 hint="3 to 40 lowercase letters, digits and hyphens; it cannot change."
                 onChange={(e) => setId(e.target.value)} />
        </Form>
      </section>
    </Shell>
  );
}

const appColumns = createColumnHelper<typeof tableFeatureSet, App>();
const memberColumns = createColumnHelper<typeof tableFeatureSet, OrganizationMember>();
const inviteColumns = createColumnHelper<typeof tableFeatureSet, Invitation>();

export function OrganizationPage(props: { name: string }) {
  const queries = useQueryClient();
  const session = useSession()!;
  const organization = useQuery({
    queryKey: ["organization", props.name],
    queryFn: () => api.organizations.getOrganization({ name: props.name }),
  });
  const apps = useQuery({
    queryKey: ["apps", props.name],
    queryFn: () => api.apps.listApps({ organization: props.name }),
  });
  const members = useQuery({
    queryKey: ["members", props.name],
    queryFn: () => api.organizations.listOrganizationMembers({ parent: props.name }),
  });
  const invitations = useQuery({
    queryKey: ["invitations", props.name],
    queryFn: () => api.organizations.listInvitations({ parent: props.name }),
  });
  const [appId, setAppId] = useState("");
  const [appName, setAppName] = useState("");
  const [secret, setSecret] = useState("");
  const [email, setEmail] = useState("");
  const [role, setRole] = useState(String(Role.DEVELOPER));
  const [actionError, setActionError] = useState<unknown>(null);
  const reload = (key: string) => queries.invalidateQueries({ queryKey: [key, props.name] });
  const act = async (work: () => Promise<unknown>, key: string) => {
    setActionError(null);
    try {
      await work();
      await reload(key);
    } catch (error) {
      setActionError(error);
    }
  };
  const org = organization.data?.organization;

  const appColumnList = [
    appColumns.accessor("displayName", {
      header: "App",
      cell: ({ row }) => <Link to={`/${row.original.name}`}>{row.original.displayName}</Link>,
    }),
    appColumns.accessor("name", { header: "Name" }),
    appColumns.accessor("plan", { header: "Plan" }),
    appColumns.accessor((a) => when(a.createTime), { id: "created", header: "Created" }),
  ];
  const memberColumnList = [
    memberColumns.accessor("displayName", { header: "Name" }),
    memberColumns.accessor("email", { header: "Email" }),
    memberColumns.accessor((m) => (m.mfaEnabled ? "Yes" : "No"), { id: "mfa", header: "Two-factor" }),
    memberColumns.display({
      id: "role",
      header: "Role",
      cell: ({ row }) => (
        <select aria-label={`Role of ${row.original.email}`} value={String(row.original.role)}
                onChange={(e) => act(() => api.organizations.updateOrganizationMember({
                  organizationMember: { name: row.original.name, role: Number(e.target.value) },
                  updateMask: { paths: ["role"] },
                }), "members")}>
          {ROLES.map(([value, text]) => <option key={value} value={value}>{text}</option>)}
        </select>
      ),
    }),
    memberColumns.display({
      id: "remove",
      header: "Actions",
      cell: ({ row }) => (
        <button type="button" onClick={() => act(async () => {
          await api.organizations.deleteOrganizationMember({ name: row.original.name });
          if (row.original.account === session.account) navigate("/");
        }, "members")}>
          {row.original.account === session.account ? "Leave" : "Remove"}
        </button>
      ),
    }),
  ];
  const inviteColumnList = [
    inviteColumns.accessor("email", { header: "Email" }),
    inviteColumns.accessor((i) => roleName(i.role), { id: "role", header: "Role" }),
    inviteColumns.accessor((i) => when(i.expireTime), { id: "expires", header: "Expires" }),
    inviteColumns.display({
      id: "withdraw",
      header: "Actions",
      cell: ({ row }) => (
        <button type="button" onClick={() => act(
          () => api.organizations.deleteInvitation({ name: row.original.name }), "invitations")}>
          Withdraw
        </button>
      ),
    }),
  ];

  return (
    <Shell>
      <p className="crumbs"><Link to="/">Organizations</Link> /</p>
      <h1>{org?.displayName ?? idOf(props.name)}</h1>
      {organization.isPending && <Loading what="the organization" />}
      <Alert error={organization.error} />
      <Alert error={actionError} />
      {org && (
        <>
          <p><Link to={`/${props.name}/billing`}>Billing</Link>: plans, usage, invoices and the card on file.</p>
          <section className="card" aria-labelledby="apps">
            <h2 id="apps">Apps</h2>
            {apps.isPending && <Loading what="apps" />}
            <Alert error={apps.error} />
            {apps.data && (
              <DataTable caption="The organization's apps" rows={apps.data.apps}
                         columns={appColumnList} empty="No apps yet." />
            )}
            {secret && (
              <Alert kind="ok">
                The app's first API key, shown only now — keep it on your backend:
                <code className="secret">{secret}</code>
              </Alert>
            )}
            <Form label="New app" submit="Create app" action={async () => {
              const made = await api.apps.createApp({
                appId,
                app: { displayName: appName, organization: props.name },
              });
              setSecret(made.apiKeySecret);
              setAppId("");
              setAppName("");
              await reload("apps");
            }}>
              <Field label="App name" required maxLength={100} value={appName}
                     onChange={(e) => setAppName(e.target.value)} />
              <Field label="App id" required pattern="[a-z][a-z0-9-]{1,38}[a-z0-9]" value={appId}
                     hint="3 to 40 lowercase letters, digits and hyphens; it cannot change."
                     onChange={(e) => setAppId(e.target.value)} />
            </Form>
          </section>
          <section className="card" aria-labelledby="members">
            <h2 id="members">Members</h2>
            {members.isPending && <Loading what="members" />}
            <Alert error={members.error} />
            {members.data && (
              <DataTable caption="Members and their roles" rows={members.data.organizationMembers}
                         columns={memberColumnList} empty="No members." />
            )}
          </section>
          <section className="card" aria-labelledby="invitations">
            <h2 id="invitations">Invitations</h2>
            <Alert error={invitations.error} />
            {invitations.data && (
              <DataTable caption="Pending invitations" rows={invitations.data.invitations}
                         columns={inviteColumnList} empty="No pending invitations." />
            )}
            <Form label="Invite a member" submit="Send invitation" action={async () => {
              await api.organizations.createInvitation({
                parent: props.name,
                invitation: { email, role: Number(role) },
              });
              setEmail("");
              await reload("invitations");
            }}>
              <Field label="Email" type="email" required value={email}
                     onChange={(e) => setEmail(e.target.value)} />
              <Select label="Role" value={role} onChange={setRole} options={ROLES} />
            </Form>
          </section>
          <section className="card" aria-labelledby="org-settings">
            <h2 id="org-settings">Settings</h2>
            <p>
              Two-factor authentication is {org.requireMfa ? "required" : "not required"} of
              members.
            </p>
            <Form label="Two-factor requirement"
                  submit={org.requireMfa ? "Stop requiring it" : "Require it"}
                  action={async () => {
                    await api.organizations.updateOrganization({
                      organization: { name: props.name, requireMfa: !org.requireMfa },
                      updateMask: { paths: ["require_mfa"] },
                    });
                    await reload("organization");
                  }}>
              <p><small>Only owners change it, and only with two-factor authentication on.</small></p>
            </Form>
          </section>
        </>
      )}
    </Shell>
  );
}

export function AcceptInvitationPage() {
  const { query } = useLocation();
  return (
    <Shell>
      <section className="card narrow">
        <h1>Join an organization</h1>
        <Form label="Accept the invitation" submit="Accept the invitation" action={async () => {
          const joined = await api.organizations.acceptInvitation({ token: query.get("token") ?? "" });
          const name = joined.organizationMember!.name.split("/members/")[0];
          navigate(`/${name}`);
        }}>
          <p>Accept to join with the role you were invited with.</p>
        </Form>
      </section>
    </Shell>
  );
}
