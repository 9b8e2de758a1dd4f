/* openapi.c - embeds openapi.json (this folder) into the binary as ing_openapi_json.
 *
 * The assembler's .incbin reads the file at build time (paths are relative to the top
 * directory, where make runs). -MMD does not see .incbin: after editing openapi.json,
 * touch this file (the OpenAPI test compares the served document with the file). */
__asm__(".section .rodata\n"
        ".global ing_openapi_json\n"
        ".global ing_openapi_json_end\n"
        ".balign 16\n"
        "ing_openapi_json:\n"
        ".incbin \"producers/ingress/openapi.json\"\n"
        "ing_openapi_json_end:\n"
        ".byte 0\n"
        ".previous\n");
