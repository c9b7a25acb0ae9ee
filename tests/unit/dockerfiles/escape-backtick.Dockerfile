# escape=`
# A Windows-style file: the backtick continues lines and backslashes are plain characters.
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command"]
ENV PROGRAM_DIR=C:\opt\program `
    PYTHONUNBUFFERED=1
RUN Invoke-WebRequest -Uri https://example.com/python.exe -OutFile python.exe; `
    Start-Process python.exe -Wait; `
    Remove-Item python.exe
COPY program/ /opt/program/
WORKDIR /opt/program
ENTRYPOINT ["python", "entry.py"]
