// Mints a single-use client secret for the browser with the API key, which stays on this server.
import { fetchClientSecret, HarkError } from "@hark-voice/client";
import { NextResponse } from "next/server";

export const dynamic = "force-dynamic";

export async function POST(): Promise<NextResponse> {
  const harkUrl = process.env.HARK_URL ?? process.env.NEXT_PUBLIC_HARK_URL ?? "http://127.0.0.1:8000";
  try {
    const secret = await fetchClientSecret(new URL("/v1/realtime/client_secrets", harkUrl).toString(), {
      apiKey: process.env.HARK_API_KEY || undefined,
      ttlSeconds: 60,
    });
    return NextResponse.json(
      { value: secret.value, expires_at: secret.expiresAt },
      { headers: { "Cache-Control": "no-store" } },
    );
  } catch (err) {
    const e = err instanceof HarkError ? err : new HarkError("server_unreachable", "Cannot reach hark.");
    // The browser sees the code and a safe message; never the key.
    const status = e.code === "token_refused" ? 502 : 503;
    return NextResponse.json({ error: { code: e.code, message: e.message } }, { status });
  }
}
