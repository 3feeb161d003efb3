import { ConversationInterface } from "@/components/ConversationInterface";

// Rendered per request so one build serves any hark: HARK_PUBLIC_URL is read at run time.
export const dynamic = "force-dynamic";

export default function Home() {
  const harkUrl = process.env.HARK_PUBLIC_URL ?? process.env.NEXT_PUBLIC_HARK_URL ?? "http://127.0.0.1:8000";
  return <ConversationInterface harkUrl={harkUrl} />;
}
