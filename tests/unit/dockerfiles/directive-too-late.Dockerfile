# A comment comes first, so the next line is an ordinary comment and not a directive.
# escape=`
FROM python:3.11-slim
RUN echo ` \
    && echo continued
ENTRYPOINT ["python3"]
