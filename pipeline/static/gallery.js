/* The reference viewer for a memes gallery: reads index.json beside this page.
 *
 * Routes (in the URL hash): #/ all memes, #/c/<category>, #/t/<tag-slug>, #/m/<slug> one meme.
 * Every text from the documents goes into the page with textContent, never as HTML.
 * Documents are fetched relative to this page, so the same files work from any host or port
 * (URLs under the site's base_url are rebased onto the folder the page was served from).
 */
(() => {
  "use strict";

  const pageBase = new URL(".", location.href);
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const single = $("single");
  const status = $("status");
  const more = $("more");

  const state = {
    root: null, // the root index.json: site, categories, tags
    tagUrls: new Map(), // lower-cased tag name -> its summary in index.json
    list: null, // route key of the list shown in the grid ("all", "c/funny", ...)
    next: null, // URL of the list's next page, or null at its end
    count: 0,
    shown: new Set(),
    loading: false,
    token: 0, // bumped on every navigation; late responses for an old view are dropped
    scroll: 0,
  };

  // --- helpers ----------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function local(url) {
    const base = state.root && state.root.site && state.root.site.base_url;
    if (base && typeof url === "string" && url.startsWith(base)) {
      return new URL(url.slice(base.length), pageBase).href;
    }
    return url;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText || "error"}`);
    return response.json();
  }

  function say(text) {
    status.textContent = text || "";
    status.hidden = !text;
  }

  function formatDate(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return iso;
    return when.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  function plural(n, word) {
    return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
  }

  // Renditions showing the whole image: same aspect ratio as the original, give or take the
  // rounding of one pixel (cropped or padded social formats are left out of srcset).
  function wholeRenditions(meme) {
    const all = Object.values(meme.renditions || {});
    const fits = all.filter(
      (r) =>
        Math.abs(r.height * meme.width - r.width * meme.height) <=
        Math.max(meme.width, meme.height),
    );
    const chosen = fits.length ? fits : all;
    const byWidth = new Map();
    for (const r of chosen) {
      const seen = byWidth.get(r.width);
      if (!seen || r.bytes < seen.bytes) byWidth.set(r.width, r);
    }
    return [...byWidth.values()].sort((a, b) => a.width - b.width);
  }

  function image(meme, sizes, preferWidth) {
    const img = el("img");
    img.alt = meme.alt || meme.title || meme.caption || meme.slug;
    img.decoding = "async";
    const sources = wholeRenditions(meme);
    if (!sources.length) return img;
    const fallback = sources.find((r) => r.width >= preferWidth) || sources[sources.length - 1];
    img.width = fallback.width;
    img.height = fallback.height;
    if (sources.length > 1) {
      img.srcset = sources.map((r) => `${local(r.url)} ${r.width}w`).join(", ");
      img.sizes = sizes;
    }
    img.src = local(fallback.url);
    return img;
  }

  // --- placeholders: the colour at once, then the decoded blurhash (blurha.sh) if any ------

  const B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

  function decode83(text) {
    let value = 0;
    for (const ch of text) {
      const digit = B83.indexOf(ch);
      if (digit < 0) throw new Error("bad blurhash");
      value = value * 83 + digit;
    }
    return value;
  }

  const toLinear = (v) => {
    const x = v / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  };
  const toSrgb = (v) => {
    const x = Math.max(0, Math.min(1, v));
    return Math.round((x <= 0.0031308 ? x * 12.92 : 1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255);
  };
  const signPow = (v, e) => Math.sign(v) * Math.pow(Math.abs(v), e);

  function blurhashPixels(hash, width, height) {
    const sizeFlag = decode83(hash[0]);
    const nx = (sizeFlag % 9) + 1;
    const ny = Math.floor(sizeFlag / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) throw new Error("bad blurhash");
    const maxAc = (decode83(hash[1]) + 1) / 166;
    const dc = decode83(hash.slice(2, 6));
    const colors = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
    for (let i = 1; i < nx * ny; i++) {
      const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
      colors.push(
        [Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19].map(
          (q) => signPow((q - 9) / 9, 2) * maxAc,
        ),
      );
    }
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
            const c = colors[i + j * nx];
            r += c[0] * basis;
            g += c[1] * basis;
            b += c[2] * basis;
          }
        }
        const p = 4 * (x + y * width);
        pixels[p] = toSrgb(r);
        pixels[p + 1] = toSrgb(g);
        pixels[p + 2] = toSrgb(b);
        pixels[p + 3] = 255;
      }
    }
    return pixels;
  }

  function placeholder(box, meme) {
    const ph = meme.placeholder || {};
    if (ph.color) box.style.backgroundColor = ph.color;
    if (!ph.blurhash) return;
    try {
      const w = 32;
      const h = Math.max(1, Math.min(64, Math.round((32 * meme.height) / meme.width) || 32));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d").putImageData(new ImageData(blurhashPixels(ph.blurhash, w, h), w, h), 0, 0);
      box.style.backgroundImage = `url("${canvas.toDataURL()}")`;
    } catch (_) {
      // a malformed blurhash leaves the plain colour: it is only a placeholder
    }
  }

  function whenLoaded(img, box) {
    const done = () => {
      box.classList.add("loaded");
      box.style.backgroundImage = ""; // the blurhash goes; the colour stays behind transparency
    };
    if (img.complete && img.naturalWidth) done();
    else img.addEventListener("load", done, { once: true });
  }

  // --- views ------------------------------------------------------------------------------

  function categoryLink(name) {
    const a = el("a", "chip", name);
    a.href = `#/c/${encodeURIComponent(name)}`;
    return a;
  }

  function card(meme) {
    const figure = el("figure", "card");
    figure.dataset.slug = meme.slug;
    const box = el("a", "thumb");
    box.href = `#/m/${encodeURIComponent(meme.slug)}`;
    // very tall or very wide memes are cropped in the grid (whole in the single view)
    const ratio = Math.min(2, Math.max(0.6, meme.width / meme.height || 1));
    box.style.aspectRatio = String(ratio);
    placeholder(box, meme);
    const img = image(meme, "(max-width: 520px) 100vw, (max-width: 1100px) 50vw, 300px", 320);
    img.loading = "lazy";
    box.append(img);
    whenLoaded(img, box);
    const caption = el("figcaption");
    if (meme.title) caption.append(el("h2", "title", meme.title));
    if (meme.caption) caption.append(el("p", "caption", meme.caption));
    const meta = el("p", "meta");
    meta.append(categoryLink(meme.category), el("time", "date", formatDate(meme.published_at)));
    meta.lastChild.dateTime = meme.published_at;
    caption.append(meta);
    figure.append(box, caption);
    return figure;
  }

  function append(memes) {
    const fragment = document.createDocumentFragment();
    for (const meme of memes) {
      if (state.shown.has(meme.slug)) continue; // a page republished while we scrolled
      state.shown.add(meme.slug);
      fragment.append(card(meme));
    }
    grid.append(fragment);
  }

  function listStatus() {
    if (!state.shown.size) say(state.next ? "Loading…" : "No memes here yet.");
    else if (!state.next) say(`That's all: ${plural(state.shown.size, "meme")}.`);
    else say("");
  }

  function renderFilters() {
    const nav = $("filters");
    nav.replaceChildren();
    const all = el("a", "filter", "All");
    all.href = "#/";
    all.dataset.route = "all";
    nav.append(all);
    for (const c of state.root.categories || []) {
      const a = el("a", "filter", c.name);
      a.href = `#/c/${encodeURIComponent(c.name)}`;
      a.dataset.route = `c/${c.name}`;
      a.append(el("span", "count", c.count));
      nav.append(a);
    }
  }

  function markFilter(route) {
    for (const a of $("filters").children) {
      if (a.dataset.route === route) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  async function showList(route, url, label) {
    const token = ++state.token;
    single.hidden = true;
    single.replaceChildren();
    grid.hidden = false;
    markFilter(route);
    document.title = label ? `${label} · ${state.root.site.title}` : state.root.site.title;
    if (state.list === route) {
      // back from a single meme: keep what was loaded and where the reader was
      listStatus();
      window.scrollTo(0, state.scroll);
      watch();
      return;
    }
    state.list = route;
    state.shown = new Set();
    state.next = null;
    state.loading = true;
    grid.replaceChildren();
    say("Loading…");
    try {
      const doc = url ? await getJSON(url) : state.root;
      if (token !== state.token) return;
      state.count = doc.count;
      state.next = doc.next;
      append(doc.memes);
    } catch (error) {
      if (token !== state.token) return;
      state.list = null;
      say(`Could not load ${label || "the gallery"}: ${error.message}`);
      return;
    } finally {
      if (token === state.token) state.loading = false;
    }
    window.scrollTo(0, 0);
    listStatus();
    watch();
  }

  async function loadMore() {
    if (state.loading || !state.next || grid.hidden) return;
    const token = state.token;
    state.loading = true;
    try {
      const doc = await getJSON(local(state.next));
      if (token !== state.token) return;
      state.next = doc.next;
      append(doc.memes);
      listStatus();
    } catch (error) {
      if (token === state.token) say(`Could not load more memes: ${error.message}`);
      return;
    } finally {
      if (token === state.token) state.loading = false;
    }
    watch();
  }

  // IntersectionObserver only reports changes: re-observing makes it report the sentinel
  // again, so a page that still leaves the bottom in view loads the following one too.
  const observer = new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    },
    { rootMargin: "0px 0px 300px 0px" },
  );

  function watch() {
    observer.unobserve(more);
    if (state.next) observer.observe(more);
  }

  async function showMeme(slug) {
    const token = ++state.token;
    if (!grid.hidden) state.scroll = window.scrollY;
    grid.hidden = true;
    observer.unobserve(more);
    markFilter(null);
    say("Loading…");
    let doc;
    try {
      doc = await getJSON(new URL(`m/${encodeURIComponent(slug)}.json`, pageBase).href);
    } catch (error) {
      if (token === state.token) say(`Could not load meme “${slug}”: ${error.message}`);
      return;
    }
    if (token !== state.token) return;
    const meme = doc.meme;
    say("");
    document.title = `${meme.title || meme.slug} · ${state.root.site.title}`;
    const figure = el("figure", "card big");
    figure.dataset.slug = meme.slug;
    const box = el("div", "thumb whole");
    box.style.aspectRatio = `${meme.width} / ${meme.height}`;
    // the whole image within the window's height, centred in the card
    box.style.maxWidth = `calc(78vh * ${meme.width / meme.height})`;
    placeholder(box, meme);
    const img = image(meme, "(max-width: 1000px) 100vw, 1000px", 1000);
    box.append(img);
    whenLoaded(img, box);
    const caption = el("figcaption");
    if (meme.title) caption.append(el("h2", "title", meme.title));
    if (meme.caption) caption.append(el("p", "caption", meme.caption));
    if (meme.credit) caption.append(el("p", "credit", meme.credit));
    const meta = el("p", "meta");
    meta.append(categoryLink(meme.category));
    for (const tag of meme.tags || []) {
      const known = state.tagUrls.get(tag.toLowerCase());
      const chip = el(known ? "a" : "span", "chip tag", `#${tag}`);
      if (known) chip.href = `#/t/${encodeURIComponent(known.slug)}`;
      meta.append(chip);
    }
    const time = el("time", "date", formatDate(meme.published_at));
    time.dateTime = meme.published_at;
    meta.append(time);
    caption.append(meta);
    figure.append(box, caption);
    const back = el("a", "back", "← All memes");
    back.href = state.list && state.list !== "all" ? `#/${state.list}` : "#/";
    if (meme.page_url) {
      // the meme's own page: the link to share (it unfurls; this view's hash route cannot)
      const share = el("a", "share-link", "Link to share");
      share.href = local(meme.page_url);
      share.rel = "bookmark";
      caption.append(share);
    }
    single.replaceChildren(back, figure);
    single.hidden = false;
    window.scrollTo(0, 0);
  }

  function decodedHash() {
    try {
      return decodeURIComponent(location.hash.replace(/^#\/?/, ""));
    } catch (error) {
      return ""; // a malformed %-escape (#/m/%E0%A4%A) is no route: the whole gallery
    }
  }

  function route() {
    const [kind, ...rest] = decodedHash().split("/");
    const name = rest.join("/");
    if (kind === "m" && name) return showMeme(name);
    if (kind === "c" && name) {
      const known = (state.root.categories || []).find((c) => c.name === name);
      const url = known ? local(known.url) : new URL(`categories/${encodeURIComponent(name)}/index.json`, pageBase).href;
      return showList(`c/${name}`, url, name);
    }
    if (kind === "t" && name) {
      const known = (state.root.tags || []).find((t) => t.slug === name);
      const url = known ? local(known.url) : new URL(`tags/${encodeURIComponent(name)}/index.json`, pageBase).href;
      return showList(`t/${name}`, url, known ? `#${known.name}` : `#${name}`);
    }
    return showList("all", null, "");
  }

  async function start() {
    say("Loading…");
    try {
      state.root = await getJSON(new URL("index.json", pageBase).href);
    } catch (error) {
      say(`This gallery has nothing published yet (index.json: ${error.message}).`);
      return;
    }
    const title = state.root.site.title;
    $("home").textContent = title;
    document.title = title;
    for (const t of state.root.tags || []) state.tagUrls.set(t.name.toLowerCase(), t);
    renderFilters();
    window.addEventListener("hashchange", route);
    route();
  }

  start();
})();
