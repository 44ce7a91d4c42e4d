// Words of the page in English and Simplified Chinese. Static text carries data-i18n="key"
// (textContent) or data-i18n-attr="attr:key;attr:key"; dynamic text goes through t(key, vars).

const STRINGS = {
  en: {
    "app.title": "Ghibli pictures",
    "app.tagline": "Turn a photo into a hand-painted, Ghibli-style scene.",
    "skip": "Skip to the page",
    "lang.switch": "中文",
    "lang.switchLabel": "切换到中文",
    "theme.toDark": "Switch to the night theme",
    "theme.toLight": "Switch to the day theme",

    "engine.demo": "Demo engine on this machine's CPU",
    "engine.dash": "— connect the real model:",
    "engine.how": "how",
    "engine.what": "Pictures now come from the offline stylizer that ghibli up starts: a photo filter for trying the service out, not the Ghibli model.",
    "engine.steps": "Stop ghibli up and start it again with the Hugging Face Space and your access token:",
    "engine.more": "Or set GHIBLI_SPACE to the URL of your own GPU copy of the model. Step by step: docs/engines.md in the project.",
    "examples.label": "or try one:",
    "examples.cat": "Try the example photo of a cat",
    "examples.coffee": "Try the example photo of a coffee cup",
    "examples.astronaut": "Try the example photo of an astronaut",
    "examples.failed": "The example photo could not be loaded.",
    "more.title": "More options",
    "more.summary": "{size} · {seed}",
    "more.seedNew": "new seed each time",
    "more.seedLocked": "seed {seed}",
    "compose.title": "Your photo",
    "drop.title": "Drop a photo here",
    "drop.or": "or paste one (Ctrl+V), or",
    "drop.choose": "Choose a photo",
    "drop.camera": "Take a photo",
    "drop.hint": "JPEG, PNG, WebP or HEIC; big photos are scaled down first.",
    "drop.change": "Choose another",
    "drop.label": "Photo file",
    "drop.cameraLabel": "Camera",
    "drop.dropping": "Let go to use this photo",
    "preview.alt": "Your photo",
    "preview.noPreview": "This browser cannot show a preview of this file; it will still be uploaded.",
    "prompt.label": "Prompt",
    "prompt.hint": "the mood you want; the default is the classic Ghibli look",
    "prompt.presets": "Prompt ideas",
    "prompt.reset": "Default",
    "preset.classic": "Classic",
    "preset.meadow": "Summer meadow",
    "preset.rain": "Rainy evening",
    "preset.seaside": "Seaside town",
    "preset.forest": "Forest spirits",
    "preset.golden": "Golden hour",
    "size.legend": "Size",
    "size.small": "Small",
    "size.medium": "Medium",
    "size.large": "Large",
    "size.hint": "Sizes keep your photo's shape. Larger pictures take longer.",
    "seed.label": "Seed",
    "seed.dice": "Pick a random seed",
    "seed.lock": "Keep this seed",
    "seed.unlock": "Stop keeping this seed",
    "seed.hintUnlocked": "A new seed for every picture. Lock it to repeat a look.",
    "seed.hintLocked": "Locked: the same seed is used every time.",
    "seed.invalid": "The seed must be a whole number from 0 to 4294967295.",
    "go": "Paint it",
    "go.busy": "Painting…",
    "go.needPhoto": "Choose a photo first.",

    "stage.title": "Ghibli picture",
    "stage.idle": "Your picture will appear here.",
    "stage.idleHint": "Painting usually takes a few seconds to a few minutes, depending on the queue.",
    "status.submitting": "Uploading your photo…",
    "status.queued": "Waiting for a free painter…",
    "status.inQueue": "In line at the painting service",
    "status.running": "Painting your picture…",
    "status.retrying": "The painting service stumbled; trying again (attempt {n})…",
    "status.quota": "Waiting for GPU quota, resumes at {time}",
    "status.quotaSoon": "Waiting for GPU quota, resumes in a moment",
    "status.quotaWhy": "The painting service's GPU time is used up for now.",
    "status.quotaHint": "Nothing is lost: the job continues by itself. You can leave this page and come back with the link.",
    "status.reconnecting": "Connection interrupted; reconnecting…",
    "status.offline": "Connection lost: the server cannot be reached",
    "outage.title": "The server is not answering.",
    "outage.hint": "This page keeps trying by itself and picks the job up again as soon as the server is back; the job's state is kept there meanwhile.",
    "status.done": "Your picture is ready.",
    "status.cancelled": "Cancelled.",
    "fact.progress": "Progress",
    "fact.step": "Step",
    "fact.elapsed": "Elapsed",
    "fact.eta": "Time left",
    "fact.queue": "Queue",
    "fact.queuePos": "#{rank} of {size}",
    "fact.queuePosNoSize": "#{rank}",
    "fact.about": "about {t}",
    "fact.unknown": "—",
    "phase.queued": "waiting",
    "phase.starting": "starting",
    "phase.in_queue": "in line",
    "phase.reading photo": "reading the photo",
    "phase.painting": "painting",
    "phase.finishing": "finishing",
    "phase.processing": "painting",
    "phase.waiting_for_token": "waiting for a free token",
    "phase.space_unavailable": "service unavailable",
    "phase.backing_off": "pausing before a retry",
    "phase.done": "done",
    "phase.failed": "stopped",
    "phase.retrying": "trying again",
    "phase.waiting_for_quota": "waiting for quota",
    "cancel": "Cancel",
    "cancel.done": "The job was cancelled and erased.",
    "copyLink": "Copy link",
    "copyLink.done": "Link copied.",
    "copyLink.manual": "Copy this link:",

    "compare.label": "Before and after: move to compare",
    "compare.before": "Before",
    "compare.after": "After",
    "result.alt": "The Ghibli-style picture",
    "result.noOriginal": "The original photo is not on this device, so there is nothing to compare.",
    "result.meta": "{w} × {h} · seed {seed} · {time}",
    "result.cached": "reused an identical earlier picture",
    "result.demo": "painted by the demo engine",
    "download": "Download",
    "download.as": "Download as {fmt}",
    "download.failed": "The download failed: {why}",
    "regenerate": "New seed, paint again",

    "history.title": "Recent pictures",
    "history.hint": "Kept only in this browser.",
    "history.empty": "Nothing yet. Your pictures will be kept here.",
    "history.open": "Open the picture from {when}, seed {seed}",
    "history.delete": "Delete the picture from {when} (here and on the server)",
    "history.deleted": "Picture deleted.",
    "history.unavailable": "This browser does not allow saving pictures here (private mode?); they are kept until you close the page.",

    "error.title": "That did not work",
    "error.retry": "Try again",
    "error.dismiss": "Start over",
    "error.network": "The server could not be reached. Check your connection and try again.",
    "error.notImage": "That file is not a picture. Choose a JPEG, PNG, WebP or HEIC photo.",
    "error.notPhotoBytes": "“{name}” is not a photo this service can read: it is not a JPEG, PNG, WebP, GIF or HEIC file, whatever its name says.",
    "error.generic": "Something went wrong.",
    "problem.missing_image": "Choose a photo first.",
    "problem.empty_image": "That file is empty.",
    "problem.unsupported_image_type": "That kind of file is not supported. Use a JPEG, PNG, WebP or HEIC photo.",
    "problem.unsupported_media_type": "That kind of file is not supported. Use a JPEG, PNG, WebP or HEIC photo.",
    "problem.image_unreadable": "That photo could not be read; it may be damaged. Try another one.",
    "problem.image_too_large": "That photo is too big.",
    "problem.payload_too_large": "That photo is too big.",
    "problem.image_too_small": "That photo is too small (it needs at least 16 × 16 pixels).",
    "problem.too_many_pixels": "That photo has too many pixels.",
    "problem.overloaded": "The service has too much work right now. Try again in a few minutes.",
    "problem.invalid_parameter": "One of the settings is not accepted.",
    "problem.bad_request": "The server did not understand the request.",
    "problem.job_not_found": "This picture is no longer on the server: jobs are kept for a limited time, or it was deleted.",
    "problem.result_expired": "The picture has expired on the server.",
    "problem.rate_limited": "Too many pictures at once. Wait a moment, then try again.",
    "problem.unavailable": "The service is busy or restarting. Try again in a minute.",
    "problem.not_ready": "The service is starting up. Try again in a minute.",
    "problem.internal_error": "The server ran into a problem. Try again in a minute.",
    "jobError.title": "The picture could not be painted",
    "jobError.quota_exceeded": "The painting service ran out of GPU time.",
    "jobError.no_gpu": "No GPU was free at the painting service.",
    "jobError.space_rejected": "The painting service could not use this photo or these settings.",
    "jobError.space_unavailable": "The painting service is unavailable right now.",
    "jobError.space_auth": "The painting service refused our access.",
    "jobError.endpoint_missing": "The painting service has changed and cannot be used right now.",
    "jobError.space_signature": "The painting service has changed and cannot be used right now.",
    "jobError.timeout": "The painting service took too long.",
    "jobError.network": "The connection to the painting service failed.",
    "jobError.stream_lost": "The connection to the painting service broke.",
    "jobError.space_queue_full": "The painting service is too busy.",
    "jobError.space_error": "The painting service failed.",
    "jobError.space_worker_error": "The painting service's GPU worker failed.",
    "jobError.rate_limited": "The painting service is limiting requests.",
    "jobError.default": "Something went wrong while painting.",

    "footer": "Runs on your own server. Photos and pictures are kept there only for a while.",
    "toast.pasted": "Photo pasted.",
  },
  "zh-CN": {
    "app.title": "吉卜力风格画",
    "app.tagline": "把一张照片变成手绘的吉卜力风格画面。",
    "skip": "跳到页面内容",
    "lang.switch": "English",
    "lang.switchLabel": "Switch to English",
    "theme.toDark": "切换到夜间主题",
    "theme.toLight": "切换到白天主题",

    "engine.demo": "正在使用本机 CPU 上的演示引擎",
    "engine.dash": "—— 接入真正的模型：",
    "engine.how": "怎么做",
    "engine.what": "现在的画由 ghibli up 启动的离线风格化程序生成：它只是用来试用服务的照片滤镜，不是吉卜力模型。",
    "engine.steps": "停止 ghibli up，然后带上 Hugging Face Space 和你的访问令牌重新启动：",
    "engine.more": "也可以把 GHIBLI_SPACE 设为你自己 GPU 上模型副本的网址。详细步骤见项目中的 docs/engines.md。",
    "examples.label": "或者试试这些：",
    "examples.cat": "试试猫的示例照片",
    "examples.coffee": "试试咖啡杯的示例照片",
    "examples.astronaut": "试试宇航员的示例照片",
    "examples.failed": "无法加载示例照片。",
    "more.title": "更多选项",
    "more.summary": "{size} · {seed}",
    "more.seedNew": "每次新种子",
    "more.seedLocked": "种子 {seed}",
    "compose.title": "你的照片",
    "drop.title": "把照片拖到这里",
    "drop.or": "或粘贴（Ctrl+V），或",
    "drop.choose": "选择照片",
    "drop.camera": "拍一张",
    "drop.hint": "支持 JPEG、PNG、WebP、HEIC；大照片会先缩小。",
    "drop.change": "换一张",
    "drop.label": "照片文件",
    "drop.cameraLabel": "相机",
    "drop.dropping": "松开即可使用这张照片",
    "preview.alt": "你的照片",
    "preview.noPreview": "此浏览器无法预览该文件，但仍会上传。",
    "prompt.label": "提示词",
    "prompt.hint": "描述想要的氛围（建议用英文），默认是经典吉卜力风格",
    "prompt.presets": "提示词灵感",
    "prompt.reset": "默认",
    "preset.classic": "经典",
    "preset.meadow": "夏日草原",
    "preset.rain": "雨夜小镇",
    "preset.seaside": "海边小镇",
    "preset.forest": "森林精灵",
    "preset.golden": "黄昏时分",
    "size.legend": "尺寸",
    "size.small": "小",
    "size.medium": "中",
    "size.large": "大",
    "size.hint": "尺寸会保持照片的比例。越大越慢。",
    "seed.label": "随机种子",
    "seed.dice": "随机选一个种子",
    "seed.lock": "固定这个种子",
    "seed.unlock": "取消固定种子",
    "seed.hintUnlocked": "每次都用新的种子。锁定后可以重现同样的效果。",
    "seed.hintLocked": "已锁定：每次都使用同一个种子。",
    "seed.invalid": "种子必须是 0 到 4294967295 之间的整数。",
    "go": "开始绘制",
    "go.busy": "绘制中…",
    "go.needPhoto": "请先选择一张照片。",

    "stage.title": "吉卜力风格画",
    "stage.idle": "画好的作品会显示在这里。",
    "stage.idleHint": "通常需要几秒到几分钟，取决于排队情况。",
    "status.submitting": "正在上传照片…",
    "status.queued": "正在等待空闲的画师…",
    "status.inQueue": "正在绘图服务中排队",
    "status.running": "正在绘制…",
    "status.retrying": "绘图服务出了点小问题，正在重试（第 {n} 次）…",
    "status.quota": "正在等待 GPU 配额，将于 {time} 恢复",
    "status.quotaSoon": "正在等待 GPU 配额，马上恢复",
    "status.quotaWhy": "绘图服务的 GPU 时间暂时用完了。",
    "status.quotaHint": "不会丢失任何东西：任务会自动继续。你可以离开此页面，稍后通过链接回来查看。",
    "status.reconnecting": "连接中断，正在重新连接…",
    "status.offline": "连接已断开：无法访问服务器",
    "outage.title": "服务器没有响应。",
    "outage.hint": "此页面会自动重试，服务器恢复后会立即接着显示任务；任务的状态保存在服务器上。",
    "status.done": "画好了。",
    "status.cancelled": "已取消。",
    "fact.progress": "进度",
    "fact.step": "步骤",
    "fact.elapsed": "已用时间",
    "fact.eta": "剩余时间",
    "fact.queue": "排队",
    "fact.queuePos": "第 {rank} 位，共 {size} 位",
    "fact.queuePosNoSize": "第 {rank} 位",
    "fact.about": "约 {t}",
    "fact.unknown": "—",
    "phase.queued": "等待中",
    "phase.starting": "启动中",
    "phase.in_queue": "排队中",
    "phase.reading photo": "读取照片",
    "phase.painting": "绘制中",
    "phase.finishing": "收尾中",
    "phase.processing": "绘制中",
    "phase.waiting_for_token": "等待空闲令牌",
    "phase.space_unavailable": "服务不可用",
    "phase.backing_off": "稍后重试",
    "phase.done": "完成",
    "phase.failed": "已停止",
    "phase.retrying": "重试中",
    "phase.waiting_for_quota": "等待配额",
    "cancel": "取消",
    "cancel.done": "任务已取消并删除。",
    "copyLink": "复制链接",
    "copyLink.done": "链接已复制。",
    "copyLink.manual": "请复制这个链接：",

    "compare.label": "前后对比：拖动查看",
    "compare.before": "原图",
    "compare.after": "效果",
    "result.alt": "吉卜力风格的画",
    "result.noOriginal": "这台设备上没有原始照片，因此无法对比。",
    "result.meta": "{w} × {h} · 种子 {seed} · {time}",
    "result.cached": "复用了之前相同的结果",
    "result.demo": "由演示引擎绘制",
    "download": "下载",
    "download.as": "下载为 {fmt}",
    "download.failed": "下载失败：{why}",
    "regenerate": "换个种子再画一次",

    "history.title": "最近的作品",
    "history.hint": "只保存在此浏览器中。",
    "history.empty": "还没有作品。画好的作品会保存在这里。",
    "history.open": "打开 {when} 的作品，种子 {seed}",
    "history.delete": "删除 {when} 的作品（此处及服务器上）",
    "history.deleted": "作品已删除。",
    "history.unavailable": "此浏览器不允许在本地保存作品（可能是隐私模式），关闭页面后将不再保留。",

    "error.title": "出了点问题",
    "error.retry": "重试",
    "error.dismiss": "重新开始",
    "error.network": "无法连接服务器。请检查网络后重试。",
    "error.notImage": "这不是图片文件。请选择 JPEG、PNG、WebP 或 HEIC 照片。",
    "error.notPhotoBytes": "“{name}”不是本服务能读取的照片：无论文件名如何，它都不是 JPEG、PNG、WebP、GIF 或 HEIC 文件。",
    "error.generic": "出了点问题。",
    "problem.missing_image": "请先选择一张照片。",
    "problem.empty_image": "这个文件是空的。",
    "problem.unsupported_image_type": "不支持这种文件。请使用 JPEG、PNG、WebP 或 HEIC 照片。",
    "problem.unsupported_media_type": "不支持这种文件。请使用 JPEG、PNG、WebP 或 HEIC 照片。",
    "problem.image_unreadable": "无法读取这张照片，文件可能已损坏。请换一张试试。",
    "problem.image_too_large": "这张照片太大了。",
    "problem.payload_too_large": "这张照片太大了。",
    "problem.image_too_small": "这张照片太小了（至少需要 16 × 16 像素）。",
    "problem.too_many_pixels": "这张照片的像素太多了。",
    "problem.overloaded": "服务当前任务太多。请几分钟后再试。",
    "problem.invalid_parameter": "有一项设置不被接受。",
    "problem.bad_request": "服务器无法理解这个请求。",
    "problem.job_not_found": "服务器上已没有这幅作品：任务只保留一段时间，或已被删除。",
    "problem.result_expired": "这幅作品在服务器上已过期。",
    "problem.rate_limited": "同时提交的作品太多了。请稍等片刻再试。",
    "problem.unavailable": "服务正忙或正在重启。请一分钟后再试。",
    "problem.not_ready": "服务正在启动。请一分钟后再试。",
    "problem.internal_error": "服务器出现问题。请一分钟后再试。",
    "jobError.title": "未能画出这幅作品",
    "jobError.quota_exceeded": "绘图服务的 GPU 时间用完了。",
    "jobError.no_gpu": "绘图服务暂时没有空闲的 GPU。",
    "jobError.space_rejected": "绘图服务无法使用这张照片或这些设置。",
    "jobError.space_unavailable": "绘图服务目前不可用。",
    "jobError.space_auth": "绘图服务拒绝了访问。",
    "jobError.endpoint_missing": "绘图服务已变更，目前无法使用。",
    "jobError.space_signature": "绘图服务已变更，目前无法使用。",
    "jobError.timeout": "绘图服务耗时太久。",
    "jobError.network": "与绘图服务的连接失败。",
    "jobError.stream_lost": "与绘图服务的连接中断了。",
    "jobError.space_queue_full": "绘图服务太忙了。",
    "jobError.space_error": "绘图服务出错了。",
    "jobError.space_worker_error": "绘图服务的 GPU 工作进程出错了。",
    "jobError.rate_limited": "绘图服务正在限制请求频率。",
    "jobError.default": "绘制时出了点问题。",

    "footer": "运行在你自己的服务器上。照片和作品只在服务器上保留一段时间。",
    "toast.pasted": "已粘贴照片。",
  },
};

export const LANGS = Object.keys(STRINGS);
const LANG_KEY = "ghibli.lang";
let current = "en";

export function detectLang() {
  const saved = safeGet(LANG_KEY);
  if (saved && STRINGS[saved]) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    const lower = String(tag || "").toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function lang() {
  return current;
}

export function setLang(code, remember = false) {
  current = STRINGS[code] ? code : "en";
  if (remember) safeSet(LANG_KEY, current);
  document.documentElement.lang = current;
  applyStatic(document);
}

export function t(key, vars = {}) {
  const table = STRINGS[current] || STRINGS.en;
  let text = table[key] ?? STRINGS.en[key] ?? key;
  for (const [name, value] of Object.entries(vars)) {
    text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function has(key) {
  return key in STRINGS.en;
}

export function applyStatic(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
  document.title = t("app.title");
}

export function safeGet(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function safeSet(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* storage disabled: the choice lasts for this page only */
  }
}
