"""Default word lists of `phrases`: head nouns that name nothing a detector can ground."""

# Head nouns that name no groundable thing: the picture itself, places in the frame, vague wholes.
GENERIC_NOUNS = (
    "image picture photo photograph photography pic shot snapshot view scene frame screenshot "
    "background foreground side top bottom left right centre center middle corner edge front back "
    "part area region section portion spot place position distance "
    "thing object item stuff something anything everything nothing shape form element piece "
    "lot number couple variety kind type sort group set bunch array collection series"
).split()
# Head nouns for qualities, feelings and concepts rather than things.
ABSTRACT_NOUNS = (
    "atmosphere mood feeling sense emotion vibe style design composition aesthetic theme concept idea "
    "lighting light shadow colour color hue tone tint shade contrast brightness texture pattern "
    "detail focus depth perspective angle quality clarity resolution size scale "
    "red orange yellow green blue purple pink brown black white grey gray gold silver beige "
    "time moment day night morning evening afternoon weather way manner fact presence absence"
).split()
