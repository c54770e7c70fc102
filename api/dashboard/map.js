// The map: MapLibre GL (from npm, served by the API), devices clustered on the GPU side, each
// lamp drawn by its state and its light with a shape as well as a colour. With no base map
// configured, the streets are drawn from the configured device ranges (no tiles, no network).
import { Map as MapLibre, Marker, NavigationControl, ScaleControl } from "/vendor/maplibre-gl/maplibre-gl.mjs";
import { t } from "./i18n.js";

export const LOOKS = ["on", "dimmed", "off", "fault", "offline", "unknown", "device"];
const PICK_RADIUS_PX = 14;
const LABELS_FROM_ZOOM = 14.5;

/** What a device looks like on the map, from its state, light and open alerts. */
export function lookOf(p) {
  if (p.state === "offline") return "offline";
  if (p.state === "unknown") return "unknown";
  if (p.state === "fault" || p.alertCount > 0) return "fault";
  if (p.kind !== "lamp") return "device";
  return p.light || "unknown";
}

/** One icon per look, drawn on a canvas: shapes tell them apart without colour. */
export function drawLook(look, size = 44) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const g = canvas.getContext("2d");
  const c = size / 2;
  const r = size * 0.36;
  g.lineWidth = size * 0.08;
  g.strokeStyle = "#0b1016";
  const circle = () => { g.beginPath(); g.arc(c, c, r, 0, 2 * Math.PI); };
  if (look === "on") {
    circle(); g.fillStyle = "#ffd43b"; g.fill(); g.stroke();
  } else if (look === "dimmed") {
    circle(); g.fillStyle = "#2b3440"; g.fill();
    g.beginPath(); g.arc(c, c, r, 0, Math.PI); g.closePath(); g.fillStyle = "#e0a800"; g.fill();
    circle(); g.strokeStyle = "#e0a800"; g.stroke();
  } else if (look === "off") {
    circle(); g.fillStyle = "#2b3440"; g.fill(); g.strokeStyle = "#8b9bb0"; g.stroke();
  } else if (look === "fault") {
    g.beginPath(); g.moveTo(c, size * 0.08); g.lineTo(size * 0.94, size * 0.9); g.lineTo(size * 0.06, size * 0.9); g.closePath();
    g.fillStyle = "#f85149"; g.fill(); g.stroke();
    g.fillStyle = "#fff"; g.fillRect(c - size * 0.05, size * 0.35, size * 0.1, size * 0.3); g.fillRect(c - size * 0.05, size * 0.71, size * 0.1, size * 0.1);
  } else if (look === "offline") {
    g.fillStyle = "#6e7681"; g.fillRect(size * 0.14, size * 0.14, size * 0.72, size * 0.72); g.strokeRect(size * 0.14, size * 0.14, size * 0.72, size * 0.72);
    g.strokeStyle = "#fff"; g.beginPath(); g.moveTo(size * 0.3, size * 0.3); g.lineTo(size * 0.7, size * 0.7); g.moveTo(size * 0.7, size * 0.3); g.lineTo(size * 0.3, size * 0.7); g.stroke();
  } else if (look === "unknown") {
    g.beginPath(); g.moveTo(c, size * 0.1); g.lineTo(size * 0.9, c); g.lineTo(c, size * 0.9); g.lineTo(size * 0.1, c); g.closePath();
    g.fillStyle = "#d29922"; g.fill(); g.stroke();
  } else {
    circle(); g.fillStyle = "#1f6feb"; g.fill(); g.stroke();
    g.beginPath(); g.arc(c, c, r * 0.4, 0, 2 * Math.PI); g.fillStyle = "#fff"; g.fill();
  }
  return canvas;
}

function blankStyle(base) {
  const style = { version: 8, sources: {}, layers: [{ id: "background", type: "background", paint: { "background-color": "#0b1016" } }] };
  if (base.raster_tiles) {
    style.sources.tiles = { type: "raster", tiles: [base.raster_tiles], tileSize: 256, attribution: base.attribution };
    style.layers.push({ id: "tiles", type: "raster", source: "tiles" });
  }
  return style;
}

export class DeviceMap {
  constructor(container, frame, onPick) {
    this.onPick = onPick;
    this.byId = new Map();
    this.collection = { type: "FeatureCollection", features: [] };
    this.selected = "";
    this.clusterMarkers = new Map();
    this.streetMarkers = [];
    this.map = new MapLibre({
      container,
      style: frame.base_map.style_url || blankStyle(frame.base_map),
      bounds: frame.bounds || undefined,
      fitBoundsOptions: { padding: 40 },
      maxZoom: 20,
      attributionControl: frame.base_map.attribution ? { customAttribution: frame.base_map.attribution } : false,
    });
    this.map.addControl(new NavigationControl({ showCompass: false }));
    this.map.addControl(new ScaleControl());
    this.ready = new Promise((resolve) => this.map.on("load", () => { this.build(frame); resolve(); }));
  }

  build(frame) {
    const map = this.map;
    for (const look of LOOKS) {
      const canvas = drawLook(look);
      map.addImage(`look-${look}`, canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height), { pixelRatio: 2 });
    }
    map.addSource("streets", { type: "geojson", data: frame.streets });
    map.addLayer({ id: "streets", type: "line", source: "streets", paint: { "line-color": "#33414f", "line-width": ["interpolate", ["linear"], ["zoom"], 12, 2, 18, 14] }, layout: { "line-cap": "round" } });
    map.addSource("devices", {
      type: "geojson",
      data: this.collection,
      cluster: true,
      clusterRadius: 36,
      clusterMaxZoom: 16,
      clusterProperties: {
        faults: ["+", ["case", ["==", ["get", "look"], "fault"], 1, 0]],
        offline: ["+", ["case", ["==", ["get", "look"], "offline"], 1, 0]],
      },
    });
    map.addLayer({
      id: "clusters", type: "circle", source: "devices", filter: ["has", "point_count"],
      paint: {
        "circle-color": ["case", [">", ["get", "faults"], 0], "#b62324", [">", ["get", "offline"], 0], "#545d68", "#1f6feb"],
        "circle-radius": ["step", ["get", "point_count"], 15, 50, 19, 500, 24, 5000, 30],
        "circle-stroke-color": "#e6edf3", "circle-stroke-width": 2,
      },
    });
    map.addLayer({
      id: "selected", type: "circle", source: "devices", filter: ["==", ["get", "id"], ""],
      paint: { "circle-radius": 15, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#ffffff", "circle-stroke-width": 3 },
    });
    // an air sensor is ringed in its index level's colour (VN_AQI table 1, or the EPA's)
    map.addLayer({
      id: "air", type: "circle", source: "devices", filter: ["all", ["!", ["has", "point_count"]], ["has", "airColour"]],
      paint: { "circle-radius": ["interpolate", ["linear"], ["zoom"], 12, 10, 17, 16, 20, 21], "circle-color": ["get", "airColour"], "circle-opacity": 0.85 },
    });
    map.addLayer({
      id: "devices", type: "symbol", source: "devices", filter: ["!", ["has", "point_count"]],
      layout: {
        "icon-image": ["concat", "look-", ["get", "look"]],
        "icon-allow-overlap": true, "icon-ignore-placement": true,
        "icon-size": ["interpolate", ["linear"], ["zoom"], 12, 0.55, 17, 0.9, 20, 1.2],
      },
    });
    for (const street of frame.streets.features) {
      const [a, b] = street.geometry.coordinates;
      const label = document.createElement("div");
      label.className = "street-label";
      label.textContent = street.properties.name;
      this.streetMarkers.push(new Marker({ element: label }).setLngLat([(a[0] + b[0]) / 2, (a[1] + b[1]) / 2]));
    }
    map.on("click", (e) => this.click(e));
    map.on("mousemove", (e) => {
      const hit = map.queryRenderedFeatures(this.box(e.point), { layers: ["devices", "clusters"] }).length;
      map.getCanvas().style.cursor = hit ? "pointer" : "";
    });
    map.on("render", () => this.labels());
  }

  box(point) {
    return [[point.x - PICK_RADIUS_PX, point.y - PICK_RADIUS_PX], [point.x + PICK_RADIUS_PX, point.y + PICK_RADIUS_PX]];
  }

  /** The feature drawn nearest the click, not whichever the renderer lists first. */
  click(e) {
    const hits = this.map.queryRenderedFeatures(this.box(e.point), { layers: ["devices", "clusters"] });
    if (!hits.length) return;
    const distance = (f) => {
      const p = this.map.project(f.geometry.coordinates);
      return (p.x - e.point.x) ** 2 + (p.y - e.point.y) ** 2;
    };
    const nearest = hits.reduce((a, b) => (distance(b) < distance(a) ? b : a));
    if (nearest.properties.cluster) {
      this.map.getSource("devices").getClusterExpansionZoom(nearest.properties.cluster_id)
        .then((zoom) => this.map.easeTo({ center: nearest.geometry.coordinates, zoom: Math.min(zoom + 0.5, 20) }));
    } else {
      this.onPick(nearest.properties.id);
    }
  }

  /** Cluster counts and street names as HTML (the page needs no font files for map labels). */
  labels() {
    const zoom = this.map.getZoom();
    for (const m of this.streetMarkers) {
      if (zoom >= LABELS_FROM_ZOOM && !m._shown) { m.addTo(this.map); m._shown = true; }
      if (zoom < LABELS_FROM_ZOOM && m._shown) { m.remove(); m._shown = false; }
    }
    const seen = new Set();
    for (const f of this.map.querySourceFeatures("devices")) {
      const p = f.properties;
      if (!p.cluster) continue;
      const key = `${p.cluster_id}|${p.point_count}|${p.faults}`;
      seen.add(key);
      if (this.clusterMarkers.has(key)) continue;
      const el = document.createElement("div");
      el.className = "cluster-label";
      el.textContent = p.faults ? `${p.point_count} · ⚠${p.faults}` : String(p.point_count);
      this.clusterMarkers.set(key, new Marker({ element: el }).setLngLat(f.geometry.coordinates).addTo(this.map));
    }
    for (const [key, marker] of this.clusterMarkers) {
      if (!seen.has(key)) { marker.remove(); this.clusterMarkers.delete(key); }
    }
  }

  /** Every device, from /api/v1/geojson (once). */
  load(features) {
    this.byId.clear();
    for (const f of features) {
      const p = f.properties;
      p.id = f.id;
      p.alertCount = p.alerts.length;
      p.look = lookOf(p);
      this.byId.set(f.id, f);
    }
    this.collection = { type: "FeatureCollection", features };
    this.redraw();
  }

  /** Small changes, from /api/v1/geojson/changes: { id: [state, light, open alerts] }. */
  update(devices) {
    let changed = false;
    for (const [id, [state, light, alertCount]] of Object.entries(devices)) {
      const f = this.byId.get(id);
      if (!f) continue;
      Object.assign(f.properties, { state, light, alertCount });
      f.properties.look = lookOf(f.properties);
      changed = true;
    }
    if (changed) this.redraw();
    return changed;
  }

  /** The air sensors' index and colour, from /api/v1/air: { id: { index, colour } }. */
  setAir(byId) {
    for (const [id, f] of this.byId) {
      const air = byId[id];
      if (air) Object.assign(f.properties, { airIndex: air.index, airColour: air.colour });
      else if ("airColour" in f.properties) { delete f.properties.airIndex; delete f.properties.airColour; }
    }
    this.redraw();
  }

  redraw() {
    const source = this.map.getSource("devices");
    if (source) source.setData(this.collection);
  }

  select(id) {
    this.selected = id || "";
    if (this.map.getLayer("selected")) this.map.setFilter("selected", ["==", ["get", "id"], this.selected]);
  }

  flyTo(id, zoom = 18.5) {
    const f = this.byId.get(id);
    if (f) this.map.jumpTo({ center: f.geometry.coordinates, zoom });
  }

  fitTo(features) {
    if (!features.length) return;
    const xs = features.map((f) => f.geometry.coordinates[0]);
    const ys = features.map((f) => f.geometry.coordinates[1]);
    this.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 60, maxZoom: 18, duration: 0 });
  }
}

export function legend(box) {
  box.replaceChildren(...LOOKS.map((look) => {
    const item = document.createElement("span");
    const icon = document.createElement("img");
    icon.src = drawLook(look, 28).toDataURL();
    icon.alt = "";
    item.append(icon, document.createTextNode(t(`look.${look}`)));
    return item;
  }));
}
