// The Meshwork web app: no framework, no build step, nothing fetched from
// anywhere but this node. Everything a user wrote becomes text nodes,
// never markup (see `h`).

const state = { token: null, status: null, members: [], depts: [], online: new Set(), files: new Map(), unread: null };
let page = { name: null, refresh: null, on: () => {} };

// --- DOM -----------------------------------------------------------------

// An element; string children become text nodes, so user content can never
// be parsed as HTML.
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function show(...kids) {
  // A part a page leaves out (the admin card, for a member) is null: never
  // shown as "undefined".
  document.getElementById("page").replaceChildren(...kids.flat().filter((k) => k != null));
}

function banner(text) {
  const b = document.getElementById("banner");
  b.textContent = text || "";
  b.hidden = !text;
}

// A time as the CLI prints it too: local, to the minute, with its zone's
// offset (the one in force then): "2026-12-03 09:14 +01:00".
const when = (ms) => {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const zone = `${off < 0 ? "-" : "+"}${two(Math.floor(Math.abs(off) / 60))}:${two(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())} ${zone}`;
};
const size = (n) => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
};
const nameOf = (id) => state.members.find((m) => m.id === id)?.name ?? id.slice(0, 8);
const me = () => state.status?.member_id;
const isAdmin = () => state.status?.workspace?.role === "admin";
const myDepts = () => state.depts.filter((d) => d.members.some((m) => m.id === me()));
// A department as a person sees it: its name, with the start of its id when
// two departments (created apart) share the name, "Ops (3f2a)".
const deptLabel = (d) => d.label ?? d.name;
// In a page's address: the name while it is unambiguous, else the id.
const deptKey = (d) => (deptLabel(d) === d.name ? d.name : d.id);
const findDept = (key) => state.depts.find((d) => d.id === key) ?? state.depts.find((d) => d.name === key);

// --- API -----------------------------------------------------------------

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  init.headers["x-session-token"] = state.token;
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new Error("The Meshwork daemon is not answering. Is it running? (meshwork daemon)");
  }
  if (res.status === 401) {
    loggedOut();
    throw new Error("Your session has ended.");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
  return data;
}

// Runs what the user asked for: the banner clears, and shows its error if
// it fails.
async function act(fn) {
  banner("");
  await quietly(fn);
}

// Runs a refresh nobody asked for: an error shows, but an error already
// shown stays until the user does something.
async function quietly(fn) {
  try {
    await fn();
  } catch (e) {
    banner(e.message);
  }
}

function loggedOut() {
  localStorage.removeItem("session");
  document.getElementById("logout").hidden = true;
  document.getElementById("search").hidden = true;
  document.getElementById("nav").replaceChildren();
  show(
    h("h1", {}, "Not logged in"),
    h("p", {}, "Run ", h("code", {}, "meshwork open"), " on this computer and follow the link it prints."),
  );
}

// --- Shell ---------------------------------------------------------------

async function loadWorkspace() {
  const [status, members, depts] = await Promise.all([
    api("/v1/status"),
    api("/v1/members?removed=true").catch(() => []),
    api("/v1/depts").catch(() => []),
  ]);
  state.status = status;
  state.members = members;
  state.depts = depts;
  state.online = new Set(status.peers.map((p) => p.member_id).filter(Boolean));
  state.online.add(status.member_id);
  document.getElementById("ws").textContent = status.workspace?.name ?? "no workspace";
  document.getElementById("me").textContent = status.name;
  await quietly(loadUnread);
  nav();
}

// What is unread: counts in the sidebar, the total in the page title.
function showUnread(unread) {
  state.unread = unread;
  document.title = unread.total ? `(${unread.total}) Meshwork` : "Meshwork";
  nav();
}

async function loadUnread() {
  const before = state.unread;
  showUnread(await api("/v1/unread"));
  if (before) await notify(before, state.unread);
}

// Browser notifications, once the user has turned them on: for a new
// mention, or a new direct message, unless this tab shows that very
// conversation in view.
async function notify(before, now) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const looking = document.visibilityState === "visible";
  if (now.mentions > before.mentions) {
    const [t] = await api("/v1/mentions?limit=1");
    if (t && !(looking && page.reads === findDept(t.dept)?.id)) {
      new Notification(`${t.author_name} mentioned you in ${t.dept}`, { body: t.body ?? "", tag: t.id });
    }
  }
  for (const c of now.dms) {
    const was = before.dms.find((b) => b.id === c.id)?.unread ?? 0;
    if (c.unread <= was || (looking && page.reads === "dm" && page.member === c.id)) continue;
    const messages = await api(`/v1/dms?member=${encodeURIComponent(c.id)}`);
    const last = messages[messages.length - 1];
    new Notification(`Message from ${c.name}`, { body: last?.body ?? "", tag: last?.id });
  }
}

// The header's button asks once for permission to notify.
function offerNotifications() {
  const button = document.getElementById("notify");
  button.hidden = !("Notification" in window) || Notification.permission !== "default";
  button.onclick = () => act(async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
}

// Marks a department (`{ dept }`) or a conversation (`{ member }`) read.
async function markRead(body) {
  showUnread(await api("/v1/read", { method: "POST", body }));
}

// A sidebar badge: how many unread, and how many of them mention me.
function badge(u) {
  if (!u?.unread) return null;
  const n = `${u.unread}${u.more ? "+" : ""}`;
  return h("span", { class: u.mentions ? "badge mention" : "badge", "aria-label": `${n} unread${u.mentions ? `, ${u.mentions} mentioning you` : ""}` }, n);
}

function nav() {
  const here = location.hash || "#/";
  const link = (href, text, count) =>
    h("a", { href, "aria-current": here === href ? "page" : null }, text, badge(count));
  const depts = myDepts();
  const unreadIn = (id) => state.unread?.depts.find((u) => u.id === id);
  const dms = state.unread?.dms.reduce((n, u) => n + u.unread, 0);
  const items = [
    link("#/", "Workspace"),
    h("h2", {}, "Feeds"),
    depts.length ? depts.map((d) => link(`#/feed/${encodeURIComponent(deptKey(d))}`, deptLabel(d), unreadIn(d.id))) : h("p", { class: "muted" }, "No department yet"),
    h("h2", {}, "Files"),
    depts.map((d) => link(`#/files/${encodeURIComponent(deptKey(d))}`, deptLabel(d))),
    h("h2", {}, "More"),
    link("#/mentions", "Mentions", { unread: state.unread?.mentions, mentions: state.unread?.mentions }),
    link("#/dms", "Direct messages", { unread: dms }),
    link("#/pins", "Pins"),
  ];
  document.getElementById("nav").replaceChildren(...items.flat());
}

function route() {
  const [, name, arg] = (location.hash || "#/").match(/^#\/([a-z]*)\/?(.*)$/) || [];
  const param = arg ? decodeURIComponent(arg) : null;
  const pages = { "": workspacePage, feed: feedPage, files: filesPage, mentions: mentionsPage, dms: dmsPage, pins: pinsPage, search: searchPage };
  page = { name, refresh: null, on: () => {} };
  nav();
  document.getElementById("nav").classList.remove("open");
  act(() => (pages[name] || workspacePage)(param));
}

function listen() {
  const events = new EventSource(`/v1/events?session=${state.token}`);
  events.onopen = () => banner("");
  events.onerror = () => banner("Lost the connection to the daemon; retrying…");
  events.onmessage = async (m) => {
    const event = JSON.parse(m.data);
    if (event.type === "roster_changed" || event.type.startsWith("peer_")) {
      await quietly(loadWorkspace);
    } else if (event.type === "feed_changed" && !(page.reads === "dm" || page.reads === event.dept)) {
      // (A page that shows what changed marks it read, and counts anew.)
      await quietly(loadUnread);
    }
    page.on(event);
  };
}

// --- Workspace -------------------------------------------------------------

async function workspacePage() {
  // Live parts are re-rendered in place on every roster or peer event; an
  // invite on screen stays.
  const title = h("h1", {});
  const people = h("table", { id: "members" });
  const admin = isAdmin() ? adminTools() : null;
  const render = () => {
    title.textContent = state.status.workspace?.name ?? "Workspace";
    people.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", {}, "Member"), h("th", {}, "Role"), h("th", {}, "Departments"))),
      h("tbody", {}, state.members.filter((m) => !m.removed).map((m) => h("tr", {},
        h("td", { class: state.online.has(m.id) ? "online" : "offline" }, m.name),
        h("td", {}, m.role),
        h("td", {}, state.depts.filter((d) => d.members.some((x) => x.id === m.id)).map(deptLabel).join(", ")),
      ))));
    admin?.refresh();
  };
  page.on = (e) => { if (e.type === "roster_changed" || e.type.startsWith("peer_")) render(); };
  show(title, people, profileCard(), admin?.el);
  render();
}

// Invites, departments and who is in them (admins). `refresh` refills the
// pickers from the latest roster.
function adminTools() {
  // A labelled control: what a screen reader and a new admin read.
  const field = (label, control) => h("label", { class: "field" }, h("span", {}, label), control);
  const post = (path, body) => api(path, { method: "POST", body });

  // Invites: department, role, how long it can be used.
  const out = h("div", { class: "token", id: "invite-token" });
  const inviteDept = h("select", { id: "invite-dept" });
  const inviteRole = h("select", { id: "invite-role" }, h("option", { value: "member" }, "member"), h("option", { value: "admin" }, "admin"));
  const inviteFor = h("select", { id: "invite-for" },
    [["3600", "1 hour"], ["86400", "1 day"], ["604800", "7 days"]].map(([v, l]) => h("option", { value: v }, l)));
  inviteFor.value = "86400";
  const invite = h("button", { id: "invite", onclick: () => act(async () => {
    const i = await post("/v1/invites", { dept: inviteDept.value || null, role: inviteRole.value, expires_secs: Number(inviteFor.value) });
    const qr = await post("/v1/web/qr", { text: i.token });
    out.replaceChildren(
      h("p", {}, `One-use ${inviteRole.value} invite, valid until `, when(i.expires_at), ". On the new member's node: ", h("code", {}, "meshwork join TOKEN"), "."),
      h("code", { id: "invite-text" }, i.token),
      h("img", { id: "invite-qr", alt: "The invite as a QR code", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(qr.svg)}` }));
  }) }, "Create invite");

  // Departments: create (you are in it), rename.
  const deptName = h("input", { id: "new-dept", placeholder: "e.g. Research" });
  const create = h("button", { id: "create-dept", onclick: () => act(async () => {
    await post("/v1/depts", { name: deptName.value });
    deptName.value = "";
    await loadWorkspace();
  }) }, "Create");
  const renamed = h("select", { id: "rename-which" });
  const newName = h("input", { id: "rename-to", placeholder: "New name" });
  const rename = h("button", { id: "rename-dept", onclick: () => act(async () => {
    await post("/v1/depts/rename", { old: renamed.value, new: newName.value });
    newName.value = "";
    await loadWorkspace();
  }) }, "Rename");

  // People: departments, role, membership.
  const who = h("select", { id: "who" });
  const where = h("select", { id: "where" });
  const move = (path) => () => act(async () => {
    await post(path, { member: who.value, dept: where.value });
    await loadWorkspace();
  });
  const promote = h("button", { id: "promote", onclick: () => act(async () => {
    await post("/v1/members/promote", { member: who.value });
    await loadWorkspace();
  }) }, "Make admin");
  const remove = h("button", { id: "remove-member", class: "danger", onclick: () => act(async () => {
    const name = who.selectedOptions[0]?.textContent;
    if (!confirm(`Remove ${name} from the workspace? Their node is disconnected and can no longer read anything new.`)) return;
    await post("/v1/members/remove", { member: who.value });
    await loadWorkspace();
  }) }, "Remove from workspace");

  // The workspace: its name, and how long shared files are kept, by how many.
  const wsName = h("input", { id: "ws-name", placeholder: "Workspace name" });
  const renameWs = h("button", { id: "rename-ws", onclick: () => act(async () => {
    await post("/v1/workspace/name", { name: wsName.value });
    wsName.value = "";
    await loadWorkspace();
  }) }, "Rename");
  const keep = h("input", { id: "retention-hours", type: "number", min: "72", step: "1" });
  const replicas = h("input", { id: "replicas", type: "number", min: "1", max: "16", step: "1" });
  const policy = h("button", { id: "set-policy", onclick: () => act(async () => {
    await post("/v1/workspace/policy", { retention_secs: Math.round(Number(keep.value) * 3600), replicas: Number(replicas.value) });
    banner("");
  }) }, "Save");
  quietly(async () => {
    const p = (await api("/v1/pins")).policy;
    keep.value = Math.round(p.retention_ms / 3600000);
    replicas.value = p.replicas;
  });

  // Refills a picker, keeping what was picked.
  const fill = (select, options) => {
    const picked = select.value;
    select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
    if (options.some(([value]) => value === picked)) select.value = picked;
  };
  const refresh = () => {
    const depts = state.depts.map((d) => [d.id, deptLabel(d)]);
    fill(inviteDept, [["", "no department"], ...depts]);
    fill(where, depts);
    fill(renamed, depts);
    fill(who, state.members.filter((m) => !m.removed && m.role !== "pinner").map((m) => [m.id, m.name]));
  };
  const el = h("section", { class: "card admin" },
    h("h2", {}, "Admin"),
    h("h3", {}, "Invite someone"),
    h("div", { class: "row" }, field("Department", inviteDept), field("Role", inviteRole), field("Valid for", inviteFor), invite), out,
    h("h3", {}, "Departments"),
    h("div", { class: "row" }, field("New department (you are in it)", deptName), create),
    h("div", { class: "row" }, field("Department", renamed), field("New name", newName), rename),
    h("h3", {}, "People"),
    h("div", { class: "row" }, field("Member", who), field("Department", where),
      h("button", { id: "add-to-dept", onclick: move("/v1/depts/add") }, "Add to department"),
      h("button", { id: "remove-from-dept", onclick: move("/v1/depts/remove") }, "Remove from department")),
    h("div", { class: "row" }, promote, remove),
    h("h3", {}, "Workspace"),
    h("div", { class: "row" }, field("Name", wsName), renameWs),
    h("div", { class: "row" }, field("Keep shared files for (hours, at least 72)", keep), field("Copies kept (replicas)", replicas), policy));
  return { el, refresh };
}

// Everyone's own card: the name colleagues see.
function profileCard() {
  const name = h("input", { id: "my-name", value: state.status.name });
  const save = h("button", { id: "rename-me", onclick: () => act(async () => {
    await api("/v1/profile/name", { method: "POST", body: { name: name.value } });
    await loadWorkspace();
  }) }, "Rename");
  return h("section", { class: "card" }, h("h2", {}, "You"),
    h("div", { class: "row" }, h("label", { class: "field" }, h("span", {}, "Your name, as colleagues see it"), name), save));
}

// --- Feed ------------------------------------------------------------------

const PAGE = 20;

async function feedPage(key) {
  // The API is asked by id: a name may be shared by departments created apart.
  const found = findDept(key);
  const deptId = found?.id;
  const dept = deptId ?? key;
  const title = found ? deptLabel(found) : key;
  let limit = PAGE;
  let more = true;
  const list = h("div", { id: "threads" });
  const text = h("textarea", { id: "compose", "aria-label": `Write to ${title}`, placeholder: `Write to ${title} — @Name mentions someone` });
  // A file of the department's library to attach to the post. Which one
  // is kept here, not in the list: a refresh of the list (the library
  // changed, perhaps by this very upload) rebuilds its options, and an
  // older answer may land after a newer one.
  let attached = "";
  const attach = h("select", { id: "attach", "aria-label": "Attach a file", onchange: () => { attached = attach.value; } });
  let refreshes = 0;
  const loadFiles = async () => {
    const mine = ++refreshes;
    const files = await api(`/v1/files?dept=${encodeURIComponent(dept)}`);
    if (mine !== refreshes) return;
    attach.replaceChildren(h("option", { value: "" }, "No file attached"),
      ...files.map((f) => h("option", { value: f.id }, `📎 ${f.name}`)));
    attach.value = files.some((f) => f.id === attached) ? attached : "";
  };
  // Or a new file from this computer: shared into the library (without a
  // post of its own), then attached to the post being written.
  const pick = h("input", { type: "file", id: "compose-file", class: "visually-hidden", "aria-label": "Upload a file to attach" });
  const uploading = h("span", { class: "muted", id: "compose-status", "aria-live": "polite" });
  pick.addEventListener("change", () => pick.files[0] && act(async () => {
    const file = pick.files[0];
    uploading.textContent = `Uploading ${file.name}…`;
    try {
      const shared = await share(dept, file, { announce: false, progress: (p) => { uploading.textContent = `Uploading ${file.name}… ${Math.round(p * 100)} %`; } });
      attached = shared.id;
      await loadFiles();
      uploading.textContent = `${file.name} is attached.`;
    } catch (e) {
      uploading.textContent = "";
      throw e;
    } finally {
      pick.value = "";
    }
  }));
  const upload = h("label", { class: "button", for: "compose-file" }, "Upload…", pick);
  const send = h("button", { class: "primary", id: "send", onclick: () => act(async () => {
    if (!text.value.trim()) return;
    const files = attached ? [attached] : [];
    await api("/v1/posts", { method: "POST", body: { dept, text: text.value, files } });
    text.value = "";
    attached = "";
    attach.value = "";
    uploading.textContent = "";
    await load();
  }) }, "Post");
  const sentinel = h("div", { class: "muted" });
  const arriving = h("div", { class: "muted", id: "arriving", "aria-live": "polite" });
  const load = async () => {
    const threads = await api(`/v1/feed?dept=${encodeURIComponent(dept)}&limit=${limit}`);
    for (const t of threads) {
      for (const [id, f] of Object.entries(t.attachments ?? {})) state.files.set(id, { id, ...f });
    }
    more = threads.length >= limit;
    if (document.visibilityState === "visible") await quietly(() => markRead({ dept }));
    list.replaceChildren(...threads.map((t) => threadEl(t, dept, load)));
    // A fresh member's first minutes: the history is still coming in.
    let feedState = null;
    try {
      feedState = await api(`/v1/feed/state?dept=${encodeURIComponent(dept)}`);
    } catch {
      // The page stands without the note.
    }
    arriving.textContent = feedState?.preview
      ? `The newest threads, ahead of the history (each checked against its author's signature). The history is still arriving (${feedState.posts} posts here so far)…`
      : feedState?.arriving
        ? `Older posts are still arriving (${feedState.posts} here so far)…`
        : "";
    sentinel.textContent = feedState?.preview
      ? "Older threads show once the history has arrived."
      : threads.length === 0 ? "No posts yet." : more ? "Loading older posts…" : "The beginning of this feed.";
  };
  new IntersectionObserver((seen) => {
    if (seen[0].isIntersecting && more) {
      limit += PAGE;
      quietly(load);
    }
  }).observe(sentinel);
  page.on = (e) => {
    if ((e.type === "feed_changed" || (e.type === "feed_preview" && e.kept)) && e.dept === deptId) quietly(load);
    if (e.type === "library_changed" && e.dept === deptId) quietly(loadFiles);
  };
  page.reads = deptId;
  page.onVisible = () => quietly(() => markRead({ dept }));
  // Mention helpers: a button per department member inserts "@Name ".
  const people = found?.members.filter((m) => m.id !== me()) ?? [];
  const mention = (name) => {
    const at = text.selectionStart ?? text.value.length;
    text.value = `${text.value.slice(0, at)}@${name} ${text.value.slice(at)}`;
    text.focus();
  };
  const mentions = people.length
    ? h("span", { class: "muted" }, "Mention: ", people.map((m) => h("button", { type: "button", class: "mention", onclick: () => mention(m.name) }, `@${m.name}`)))
    : null;
  show(h("h1", {}, title), h("div", { class: "compose" }, text, h("div", { class: "row" }, send, attach, upload, uploading, mentions)), arriving, list, sentinel);
  await Promise.all([load(), quietly(loadFiles)]);
}

// Posts that mention me, in every department, newest first; each says where.
async function mentionsPage() {
  const list = h("div", { id: "mentions" });
  const load = async () => {
    const found = await api(`/v1/mentions?limit=${PAGE}`);
    list.replaceChildren(...found.map((t) => {
      const el = threadEl(t, t.dept, load);
      el.querySelector(".meta")?.append(" · in ", h("a", { href: `#/feed/${encodeURIComponent(t.dept)}` }, t.dept));
      return el;
    }));
    if (!found.length) list.append(h("p", { class: "muted" }, "Nobody has mentioned you yet."));
  };
  page.on = (e) => { if (e.type === "feed_changed") quietly(load); };
  show(h("h1", {}, "Mentions"), list);
  await load();
}

async function conversationsPage() {
  const talks = await api("/v1/dms");
  const unreadWith = (id) => state.unread?.dms.find((u) => u.id === id);
  const people = state.members.filter((m) => !m.removed && m.id !== me() && m.role !== "pinner");
  const last = new Map(talks.map((c) => [c.member, c.last]));
  people.sort((a, b) => (last.get(b.id)?.created_at ?? 0) - (last.get(a.id)?.created_at ?? 0) || a.name.localeCompare(b.name));
  const row = (m) => {
    const l = last.get(m.id);
    const said = l ? `${l.author === me() ? "You: " : ""}${l.deleted ? "(deleted)" : l.body}` : "No messages yet";
    return h("li", { class: "conversation" },
      h("a", { href: `#/dms/${m.id}` }, h("span", { class: state.online.has(m.id) ? "online" : "offline" }, m.name), badge(unreadWith(m.id))),
      h("div", { class: "muted last" }, said, l ? ` · ${when(l.created_at)}` : ""));
  };
  page.on = (e) => { if (e.type === "feed_changed" || e.type.startsWith("peer_")) quietly(conversationsPage); };
  show(h("h1", {}, "Direct messages"), people.length
    ? h("ul", { id: "conversations", class: "conversations" }, people.map(row))
    : h("p", { class: "muted" }, "Nobody else is in the workspace yet: invite a colleague from the Workspace page."));
}

// Search results: what matched, where, and the matched words marked.
async function searchPage(query) {
  document.getElementById("q").value = query ?? "";
  if (!query) {
    show(h("h1", {}, "Search"), h("p", { class: "muted" }, "Type in the search box above: posts, replies, direct messages and file names."));
    return;
  }
  const found = await api(`/v1/search?q=${encodeURIComponent(query)}&limit=50`);
  const summary = found.total > found.hits.length
    ? `The best ${found.hits.length} of ${found.total} matches`
    : `${found.total} ${found.total === 1 ? "match" : "matches"}`;
  show(h("h1", {}, `Search: ${query}`),
    h("p", { class: "muted", id: "search-summary" }, found.total ? summary : "No matches. Every word must match; try fewer words."),
    h("div", { id: "hits" }, found.hits.map(hitEl)));
}

const hitWhat = { post: "Post", reply: "Reply", message: "Message", file: "File", folder: "Folder" };

function hitEl(hit) {
  const dept = state.depts.find((d) => d.id === hit.dept_id);
  const where = hit.with
    ? h("a", { href: `#/dms/${hit.with}` }, `conversation with ${hit.with_name}`)
    : h("a", { href: `#/${hit.kind === "file" || hit.kind === "folder" ? "files" : "feed"}/${encodeURIComponent(dept ? deptKey(dept) : hit.dept_id)}` }, hit.dept);
  return h("div", { class: "card post hit" },
    h("div", { class: "meta" }, `${hitWhat[hit.kind] ?? hit.kind} by ${hit.author_name} · in `, where, ` · ${when(hit.at)}`),
    h("div", { class: "body" }, marked(hit.snippet, hit.highlights)));
}

// `text` with the byte ranges `ranges` (as the server counts, in UTF-8)
// wrapped in <mark>: built from text nodes, never parsed as HTML.
function marked(text, ranges) {
  const bytes = new TextEncoder().encode(text);
  const decode = (a, b) => new TextDecoder().decode(bytes.subarray(a, b));
  const out = [];
  let at = 0;
  for (const [a, b] of ranges) {
    if (a < at || b > bytes.length || b <= a) continue;
    out.push(decode(at, a), h("mark", {}, decode(a, b)));
    at = b;
  }
  out.push(decode(at, bytes.length));
  return out;
}

function threadEl(t, dept, reload) {
  const el = postEl(t, t.author_name, dept, reload, true);
  if (t.replies.length) {
    el.append(h("div", { class: "replies" }, t.replies.map((r) => postEl(r, nameOf(r.author), dept, reload, false))));
  }
  return el;
}

function postEl(p, author, dept, reload, topLevel) {
  const body = h("div", { class: "body" }, p.deleted ? h("em", { class: "muted" }, "deleted") : p.body);
  const actions = h("div", { class: "actions" });
  const el = h("article", { class: "card post", "data-id": p.id },
    h("div", { class: "meta" }, author, " · ", when(p.created_at), p.edited_at ? " · edited" : ""),
    body, actions);
  if (p.deleted) return el;
  if (p.files?.length) {
    // Attached files: a link each, fetched from whoever holds it on click.
    body.after(h("div", { class: "attachments" }, p.files.map((id) => {
      const f = state.files.get(id);
      return h("span", { class: "attachment" }, f && previewable(f) ? thumbnail(f, "preview") : "📎 ", f ? downloadLink(f) : h("span", { class: "muted" }, `file ${id.slice(0, 8)}…`), f ? h("span", { class: "muted" }, ` ${size(f.size)}`) : "");
    })));
  }
  for (const [emoji, who] of Object.entries(p.reactions)) {
    actions.append(h("button", { "aria-label": `${emoji} ${who.map(nameOf).join(", ")}`, onclick: () => act(async () => {
      await api("/v1/posts/react", { method: "POST", body: { post: p.id, emoji } });
      await reload();
    }) }, `${emoji} ${who.length}`));
  }
  for (const emoji of ["👍", "🎉", "❤️", "😄", "👀", "✅"]) {
    if (!p.reactions[emoji]) {
      actions.append(h("button", { "aria-label": `React ${emoji}`, onclick: () => act(async () => {
        await api("/v1/posts/react", { method: "POST", body: { post: p.id, emoji } });
        await reload();
      }) }, `+${emoji}`));
    }
  }
  if (topLevel) {
    actions.append(h("button", { onclick: () => {
      const text = h("textarea", { "aria-label": "Reply" });
      const box = h("div", { class: "compose" }, text, h("div", { class: "row" }, h("button", { class: "primary", onclick: () => act(async () => {
        await api("/v1/posts", { method: "POST", body: { dept, text: text.value, reply_to: p.id } });
        await reload();
      }) }, "Reply")));
      el.append(box);
      text.focus();
    } }, "Reply"));
  }
  if (p.author === me()) {
    actions.append(h("button", { onclick: () => {
      const text = h("textarea", { "aria-label": "Edit post" });
      text.value = p.body;
      body.replaceChildren(text, h("button", { class: "primary", onclick: () => act(async () => {
        await api("/v1/posts/edit", { method: "POST", body: { post: p.id, text: text.value } });
        await reload();
      }) }, "Save"));
      text.focus();
    } }, "Edit"));
  }
  if (p.author === me() || (isAdmin() && dept)) {
    actions.append(h("button", { onclick: () => act(async () => {
      if (!confirm(dept ? "Delete this post?" : "Delete this message?")) return;
      await api("/v1/posts/delete", { method: "POST", body: { post: p.id } });
      await reload();
    }) }, "Delete"));
  }
  return el;
}

// --- Direct messages ---------------------------------------------------------

// Direct messages: every colleague, those you talk with first (the latest
// conversation on top, its last message and unread count shown); a
// conversation reads oldest first, as chats do, the newest at the bottom
// by the box you answer in.
async function dmsPage(member) {
  if (!member) return conversationsPage();
  const box = h("div", { id: "messages" });
  const load = async () => {
    const messages = await api(`/v1/dms?member=${encodeURIComponent(member)}`);
    box.replaceChildren(...messages.map((p) => postEl(p, nameOf(p.author), null, load, false)));
    if (!messages.length) box.append(h("p", { class: "muted" }, "No messages yet: say hello."));
    if (document.visibilityState === "visible") await quietly(() => markRead({ member }));
  };
  const text = h("textarea", { id: "dm-text", "aria-label": `Message ${nameOf(member)}`, placeholder: `Message ${nameOf(member)}` });
  const send = h("button", { id: "dm-send", class: "primary", onclick: () => act(async () => {
    await api("/v1/dms", { method: "POST", body: { member, text: text.value } });
    text.value = "";
    await load();
  }) }, "Send");
  // Whether they can receive now: messages to someone offline wait on
  // this node (and reach them when both are online).
  const presence = h("p", { id: "dm-presence", class: "muted", "aria-live": "polite" });
  const showPresence = () => {
    presence.textContent = state.online.has(member)
      ? `${nameOf(member)} is online.`
      : `${nameOf(member)} is offline: your messages reach them when you are both online.`;
  };
  showPresence();
  page.on = (e) => {
    if (e.type === "feed_changed") quietly(load);
    if (e.type.startsWith("peer_")) showPresence();
  };
  page.reads = "dm";
  page.member = member;
  page.onVisible = () => quietly(() => markRead({ member }));
  show(h("h1", {}, nameOf(member)), presence, box, h("div", { class: "compose" }, text, h("div", { class: "row" }, send)));
  await load();
}

// --- Files -----------------------------------------------------------------

// Shares `file` into department `dept` from the browser, its bytes sealed
// by the node as they arrive. Asks first whether the node will take it (a
// department of mine, room on its disk), so that a file too large fails
// before its bytes go. `announce`: the node posts "shared NAME" itself.
// Resolves to the shared file's record.
async function share(dept, file, { announce, progress }) {
  await api("/v1/web/upload/check", { method: "POST", body: { dept, name: file.name, size: file.size } });
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/web/upload?dept=${encodeURIComponent(dept)}&name=${encodeURIComponent(file.name)}&announce=${announce}`);
    xhr.setRequestHeader("x-session-token", state.token);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress?.(e.loaded / e.total); };
    xhr.onload = () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 200) resolve(answer);
      else reject(new Error(answer.error || `Upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("The Meshwork daemon is not answering. Is it running?"));
    xhr.send(file);
  });
}

async function filesPage(key) {
  const found = findDept(key);
  const deptId = found?.id;
  const dept = deptId ?? key;
  const title = found ? deptLabel(found) : key;
  const table = h("table", { id: "files" });
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const input = h("input", { type: "file", id: "upload", "aria-label": "Share a file" });
  const upload = (file) => act(async () => {
    bar.hidden = false;
    status.textContent = `Sharing ${file.name}…`;
    try {
      await share(dept, file, { announce: true, progress: (p) => { bar.value = p; } });
      status.textContent = `Shared ${file.name}.`;
    } catch (e) {
      status.textContent = "";
      throw e;
    } finally {
      bar.hidden = true;
    }
    await load();
  });
  input.addEventListener("change", () => input.files[0] && upload(input.files[0]));
  const drop = h("div", { class: "drop", id: "drop" }, "Drop a file here, or ", input);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
  const load = async () => {
    const files = await api(`/v1/files?dept=${encodeURIComponent(dept)}`);
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["Name", "Type", "Size", "Shared by", "Shared", "Available until", "Peers"].map((c) => h("th", {}, c)))),
      h("tbody", {}, files.map((f) => h("tr", { "data-id": f.id },
        h("td", {}, previewable(f) ? thumbnail(f, "thumb") : null, downloadLink(f)),
        h("td", { class: "muted" }, kindOf(f)),
        h("td", {}, size(f.size)),
        h("td", {}, f.uploader_name),
        h("td", {}, when(f.shared_at)),
        h("td", {}, when(f.available_until)),
        h("td", {}, f.peers)))));
    if (!files.length) table.append(h("caption", {}, "No files yet."));
  };
  page.on = (e) => { if (e.type === "library_changed" && e.dept === deptId) quietly(load); };
  show(h("h1", {}, `Files — ${title}`), drop, bar, status, table);
  await load();
}

// Images the node previews (and only those: anything else downloads).
const PREVIEWABLE = ["image/png", "image/jpeg", "image/webp", "image/gif"];
const previewable = (f) => PREVIEWABLE.includes(f.media_type) && !f.entries && f.size <= 20 * 1024 * 1024;

const fileUrl = (route, f) => `/v1/web/${route}/${encodeURIComponent(f.id)}?session=${state.token}`;

// An image's thumbnail (at most 320 px a side, made and kept by the node),
// a button that shows the whole image over the page. One the node refuses
// (not the image it claims to be) is a 📎, never a broken image.
function thumbnail(f, cls) {
  const img = h("img", { class: cls, alt: f.name, loading: "lazy", src: fileUrl("thumb", f) });
  const button = h("button", { type: "button", class: "thumbnail", "aria-label": `View ${f.name}`, onclick: () => lightbox(f) }, img);
  img.addEventListener("error", () => button.replaceWith("📎 "));
  return button;
}

// The whole image over the page, decrypted by the node (its preview): in
// the page rather than a tab of its own, whose address would carry the
// session's token into the history. Escape, its Close button or a click
// beside it closes it.
function lightbox(f) {
  const dialog = h("dialog", { class: "lightbox", "aria-label": f.name });
  const img = h("img", { alt: f.name, src: fileUrl("preview", f) });
  img.addEventListener("error", () => img.replaceWith(h("p", { class: "bad" }, `${f.name} cannot be shown here: download it.`)));
  dialog.append(img, h("div", { class: "row" },
    h("span", { class: "name" }, downloadLink(f)), h("span", { class: "muted" }, size(f.size)),
    h("button", { type: "button", class: "close", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

// What a file is, for people: "folder, 4 files", "PDF", "PNG image", or
// its extension.
function kindOf(f) {
  if (f.entries) return `folder, ${f.entries.length} file${f.entries.length === 1 ? "" : "s"}`;
  const [top, sub = ""] = (f.media_type || "").split("/");
  if (top === "image") return `${sub.toUpperCase()} image`;
  if (sub === "pdf") return "PDF";
  const ext = f.name.includes(".") ? f.name.split(".").pop().toUpperCase() : "";
  return ext || top || "file";
}

// A link that first makes sure some reachable peer has the file (showing
// why not, if none does), then lets the browser download it.
function downloadLink(f) {
  const href = `/v1/web/download/${encodeURIComponent(f.id)}?session=${state.token}`;
  let ready = false;
  const a = h("a", { href, download: f.name }, f.name);
  a.addEventListener("click", (e) => {
    if (ready) return;
    e.preventDefault();
    act(async () => {
      a.setAttribute("aria-busy", "true");
      try {
        await api("/v1/web/fetch", { method: "POST", body: { id: f.id } });
      } finally {
        a.removeAttribute("aria-busy");
      }
      ready = true;
      a.click();
      ready = false;
    });
  });
  return a;
}

// --- Pins ------------------------------------------------------------------

async function pinsPage() {
  const load = async () => {
    const v = await api("/v1/pins");
    show(
      h("h1", {}, "Pins"),
      h("p", {}, `Kept for at least ${Math.round(v.policy.retention_ms / 3600000)} h, by ${v.policy.replicas} pinner(s) each.`),
      h("table", {},
        h("thead", {}, h("tr", {}, ["File", "Size", "Until", "Replicas", "Pinners"].map((c) => h("th", {}, c)))),
        h("tbody", {}, v.pins.map((p) => h("tr", {},
          h("td", {}, p.name ?? `blob ${p.blob.slice(0, 16)}…`),
          h("td", {}, size(p.size)),
          h("td", {}, when(p.until)),
          h("td", { class: p.meets_target ? "" : "bad" }, `${p.replicas}/${p.target}`),
          h("td", {}, p.pinners.map((x) => x.name + (x.lost ? " (lost)" : x.failed_audit ? " (failed audit)" : "")).join(", ") || "none"))))),
      h("h2", {}, "Pin nodes"),
      v.nodes.length
        ? h("ul", {}, v.nodes.map((n) => h("li", { class: n.full ? "bad" : "" }, `${n.name}: ${size(n.used)} of ${size(n.quota)}${n.full ? " — full (quota or disk)" : ""}`)))
        : h("p", { class: "muted" }, "No pin node has reported yet."));
  };
  page.on = (e) => { if (e.type === "pins_changed") quietly(load); };
  await load();
}

// --- Start -----------------------------------------------------------------

// A tab coming back into view reads what its page shows.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") page.onVisible?.();
});

async function start() {
  document.getElementById("menu").addEventListener("click", (e) => {
    const open = document.getElementById("nav").classList.toggle("open");
    e.currentTarget.setAttribute("aria-expanded", String(open));
  });
  // The login link's redirect hands over the session token in the
  // fragment: keep it for every tab of this origin (the port is stable
  // across restarts), and take it out of the address bar.
  const handed = location.hash.match(/^#session=([0-9a-f]+)$/);
  if (handed) {
    localStorage.setItem("session", handed[1]);
    history.replaceState(null, "", location.pathname);
  }
  state.token = localStorage.getItem("session");
  if (!state.token) return loggedOut();
  const logout = document.getElementById("logout");
  logout.hidden = false;
  logout.addEventListener("click", () => act(async () => {
    await api("/v1/web/logout", { method: "POST" });
    loggedOut();
  }));
  await act(loadWorkspace);
  const search = document.getElementById("search");
  search.hidden = false;
  search.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = document.getElementById("q").value.trim();
    if (q) location.hash = `#/search/${encodeURIComponent(q)}`;
  });
  offerNotifications();
  listen();
  window.addEventListener("hashchange", route);
  route();
}

start();
