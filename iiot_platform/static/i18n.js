/* UI strings in English and Chinese; the toggle in the header switches them. */
window.IIOT_I18N = {
  en: {
    title: "iiotlab platform", devices: "Devices", device: "Device", tenant: "Tenant",
    plant: "Plant", state: "State", messages: "Messages", lastSeen: "Last message",
    noDevices: "No device has sent anything yet.", liveCharts: "Live charts",
    alarms: "Alarms", raised: "Raised", rule: "Rule", message: "Message",
    noAlarms: "No alarms.", deadLetters: "Dead letters", received: "Received",
    topic: "Topic", reason: "Reason", payload: "Payload", noDead: "No rejected messages.",
    apiDocs: "API documentation", chartsBy: "Charts by", token: "API token",
    signin: "Sign in", online: "online", offline: "offline", acknowledge: "Acknowledge",
    active: "active", acknowledged: "acknowledged", cleared: "cleared",
    badToken: "The token was refused.", updated: "updated", noNumeric: "No numeric metrics yet.",
    lang: "中文", role: "role", live: "live since", reconnecting: "reconnecting…",
  },
  zh: {
    title: "iiotlab 工业互联网平台", devices: "设备", device: "设备", tenant: "租户",
    plant: "装置", state: "状态", messages: "消息数", lastSeen: "最近消息",
    noDevices: "还没有设备发送数据。", liveCharts: "实时曲线",
    alarms: "告警", raised: "产生时间", rule: "规则", message: "描述",
    noAlarms: "没有告警。", deadLetters: "死信", received: "接收时间",
    topic: "主题", reason: "原因", payload: "载荷", noDead: "没有被拒绝的消息。",
    apiDocs: "API 文档", chartsBy: "曲线组件", token: "API 令牌",
    signin: "登录", online: "在线", offline: "离线", acknowledge: "确认",
    active: "活动", acknowledged: "已确认", cleared: "已清除",
    badToken: "令牌无效。", updated: "更新于", noNumeric: "暂无数值型指标。",
    lang: "English", role: "角色", live: "实时推送，自", reconnecting: "正在重新连接…",
  },
};
